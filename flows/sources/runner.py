"""Run configured sources through the one ingest path (validation, rejects, counts, watermark).

Every source, whatever it reads, ends in :func:`db.ingest.ingest_chunks` (observations) or,
with a ``covariate:`` block, :func:`db.covariates.ingest_covariates`
(:mod:`flows.sources.covariate_loads`), so validation, the rejects table and
``accepted + rejected == received`` are the same as for files.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from db.batches import IngestResult, first_rejects
from db.ingest import ingest_chunks
from db.watermarks import read_watermark
from flows.errors import SeqcastError
from flows.sources.base import SourceFailure, SourceItems, SourceLoad, Window
from flows.sources.config import FilesSource, HttpSource, MqttSource, SourceConfig, SqlSource
from flows.sources.covariate_loads import as_covariate_loads, covariate_file_loads, load_covariates

REPLAYABLE = ("files", "http", "sql")


def source_items(
    engine: Engine,
    cfg: SourceConfig,
    window: Window | None = None,
    forever: bool = False,
    stop: threading.Event | None = None,
) -> SourceItems:
    """The source's loads: new data since its watermark, or the window's data (backfill);
    covariate rows for a source with a ``covariate:`` block."""
    if window is not None and cfg.type not in REPLAYABLE:
        raise SeqcastError(
            f"source {cfg.name} ({cfg.type}) cannot replay a time range; "
            f"backfill works for {', '.join(REPLAYABLE)} sources"
        )
    if cfg.covariate is None:
        return connector_items(engine, cfg, window, forever, stop)
    if isinstance(cfg, FilesSource):
        return covariate_file_loads(cfg, window)
    return as_covariate_loads(connector_items(engine, cfg, window, forever, stop), cfg.covariate)


def connector_items(
    engine: Engine,
    cfg: SourceConfig,
    window: Window | None,
    forever: bool,
    stop: threading.Event | None,
) -> SourceItems:
    """The connector's loads as it reads them (rows ``series_id, ts, value``)."""
    if isinstance(cfg, FilesSource):
        from flows.sources.folder import file_loads

        return file_loads(cfg, window)
    if isinstance(cfg, HttpSource):
        from flows.sources.http import http_loads

        return http_loads(cfg, read_watermark(engine, cfg.name), window)
    if isinstance(cfg, SqlSource):
        from flows.sources.sql import sql_loads

        return sql_loads(cfg, read_watermark(engine, cfg.name), window)
    if isinstance(cfg, MqttSource):
        from flows.sources.mqtt import mqtt_loads

        return mqtt_loads(cfg, forever=forever, stop=stop)
    raise SeqcastError(f"source {cfg.name}: unknown type")  # pragma: no cover - pydantic


def run_source(
    engine: Engine,
    cfg: SourceConfig,
    window: Window | None = None,
    forever: bool = False,
    stop: threading.Event | None = None,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Load every batch a source yields; return (per-batch counts, failures as messages).

    A failure of one part (a symbol, a file) is recorded and the rest still loads.
    """
    results: list[dict[str, Any]] = []
    failures: list[str] = []
    items = source_items(engine, cfg, window, forever, stop)
    # A backfill really replays: its batches are new even when their content was loaded
    # before (rows deleted since come back; unchanged rows upsert to nothing).
    replay = f"backfill {dt.datetime.now(dt.UTC).isoformat()}" if window is not None else ""
    try:
        for item in items:  # the generator resumes only after the load below has committed
            if isinstance(item, SourceFailure):
                failures.append(f"{item.source}: {item.message}")
                continue
            result = load_item(engine, cfg, item, _replay_sha(item.content_sha256, replay))
            if result.accepted + result.rejected != result.received:  # pragma: no cover
                raise RuntimeError(f"counts do not reconcile for batch {result.batch_id}")
            samples = first_rejects(engine, result.batch_id) if result.rejected else []
            row = {
                "source_name": cfg.name,
                "source_type": cfg.type,
                **result.as_dict(),
                "first_rejects": [f"{item.source}:{n}: {why}" for n, why in samples],
            }
            results.append(row)
            if on_result is not None:
                on_result(row)
    finally:
        items.close()  # on failure too: the source lets go (an MQTT session disconnects, unacked)
    return results, failures


def load_item(
    engine: Engine, cfg: SourceConfig, item: SourceLoad, content_sha256: str
) -> IngestResult:
    """Load one batch into observations, or into covariates for a covariate source."""
    if cfg.covariate is not None:
        return load_covariates(engine, cfg, item, content_sha256)
    return ingest_chunks(
        engine,
        item.chunks,
        item.source,
        content_sha256,
        cfg.series_spec(),
        cfg.assume_timezone,
        item.watermark,
    )


def _replay_sha(content_sha256: str, replay: str) -> str:
    if not replay:
        return content_sha256
    return hashlib.sha256(f"{content_sha256} {replay}".encode()).hexdigest()
