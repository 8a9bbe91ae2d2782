"""Configured sources that deliver covariates: their loads, in the covariates' row shape.

A source with a ``covariate:`` block (:class:`flows.sources.config.CovariateLoad`) reads as
it would for observations, and every load ends in :func:`db.covariates.ingest_covariates`
(validation, rejects with reasons, ``accepted + rejected == received``, a repeat of loaded
content is a no-op) with the source's watermark move in the same transaction. A files source
reads covariate files (:mod:`flows.sources.covariate_files`), one load per file, new content
only; HTTP, SQL and MQTT rows arrive as ``series_id, ts, value`` and their series id becomes
the scope key (or, for a global covariate without a name, the covariate's name).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
from sqlalchemy import Engine

from db.batches import IngestResult
from db.covariates import ingest_covariates
from db.watermarks import WatermarkUpdate
from flows.errors import SeqcastError
from flows.sources.base import SourceFailure, SourceItems, SourceLoad, Window
from flows.sources.config import CovariateLoad, FilesSource, SourceConfig
from flows.sources.covariate_files import read_covariate_file
from flows.sources.folder import SUFFIXES, list_paths


def covariate_file_loads(cfg: FilesSource, window: Window | None = None) -> SourceItems:
    """One load per covariate file (a backfill takes the files modified inside the window)."""
    assert cfg.covariate is not None
    declaration = cfg.covariate.declaration()
    for path in list_paths(cfg.name, cfg.path, SUFFIXES):
        mtime = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
        if window is not None and not (window.start <= mtime < window.end):
            continue
        try:
            table = read_covariate_file(path, declaration)
        except SeqcastError as exc:
            yield SourceFailure(str(path), str(exc))
            continue
        mark = None
        if window is None:
            mark = WatermarkUpdate(
                cfg.name, {"last_file": str(path), "last_mtime": mtime.isoformat()}
            )
        yield SourceLoad(table.source, table.content_sha256, [table.rows], mark)


def covariate_rows(frame: pd.DataFrame, covariate: CovariateLoad) -> pd.DataFrame:
    """A connector's ``series_id, ts, value`` rows as covariate rows (``scope_key``, and
    ``name`` from the series id when a global covariate is not named)."""
    rows = frame.rename(columns={"series_id": "scope_key"})
    if covariate.scope == "global":
        if covariate.name is None:
            rows = rows.assign(name=rows["scope_key"])
        rows = rows.assign(scope_key="")
    return rows


def as_covariate_loads(items: SourceItems, covariate: CovariateLoad) -> SourceItems:
    """A connector's loads with covariate rows (see :func:`covariate_rows`)."""
    try:
        for item in items:  # resumed after the caller committed the load (MQTT acks then)
            if isinstance(item, SourceFailure):
                yield item
                continue
            rows = [covariate_rows(chunk, covariate) for chunk in item.chunks]
            yield SourceLoad(item.source, item.content_sha256, rows, item.watermark)
    finally:
        items.close()  # the connector lets go too (an MQTT session disconnects, unacked)


def load_covariates(
    engine: Engine, cfg: SourceConfig, item: SourceLoad, content_sha256: str
) -> IngestResult:
    """Validate and load one covariate load, its watermark in the same transaction."""
    assert cfg.covariate is not None
    rows = pd.concat(list(item.chunks), ignore_index=True)
    return ingest_covariates(
        engine,
        rows,
        item.source,
        content_sha256,
        cfg.covariate.declaration(),
        cfg.assume_timezone,
        item.watermark,
    )
