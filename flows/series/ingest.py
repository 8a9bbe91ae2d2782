"""The ``ingest`` flow: files or bundled data sets into the database, with rejects and counts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from db import make_engine
from db.batches import first_rejects
from db.ingest import ingest_chunks
from db.observations import SeriesSpec
from flows.checks import check_database
from flows.errors import USER_ERRORS, SeqcastError
from flows.hooks import ALERT
from flows.progress import track_rows
from flows.project import ProjectFile, apply_environment, load_project
from flows.series.params import IngestParams
from flows.settings import Settings
from flows.sources.base import Window
from flows.sources.bundled import bundled
from flows.sources.config import SourceConfig
from flows.sources.layout import FileLayout, read_laid_out
from flows.sources.readers import SourceBatch, read_file
from flows.sources.runner import run_source
from flows.tasks import io_task


@io_task()
def read_source(
    path: str | None, name: str | None, declare: SeriesSpec | None, layout: FileLayout | None
) -> list[SourceBatch]:
    """Check one file or bundled data set and hash its content: its batch, or (a wide file)
    one per series column."""
    if path is None:
        return [bundled(name or "")]
    if layout is None or layout.is_long:
        return [read_file(path, declare)]
    return read_laid_out(path, declare, layout)


@io_task()
def load_batch(batch: SourceBatch, assume_timezone: str | None) -> dict[str, object]:
    """Validate and upsert one source, chunk by chunk (resumes an interrupted load)."""
    # The URL comes from the environment here, never as a task argument, so credentials in it
    # are not recorded with the task run.
    engine = make_engine(Settings.from_env().database_url)
    try:
        result = ingest_chunks(
            engine,
            track_rows(batch.chunks(), f"ingest {Path(batch.source).name}"),
            batch.source,
            batch.content_sha256,
            batch.declare,
            assume_timezone,
        )
        samples = first_rejects(engine, result.batch_id) if result.rejected else []
    finally:
        engine.dispose()
    where = batch.source.removeprefix("bundled:")
    return {**result.as_dict(), "first_rejects": [f"{where}:{n}: {why}" for n, why in samples]}


@io_task()
def load_configured_source(
    cfg: SourceConfig, window: Window | None = None
) -> tuple[list[dict[str, Any]], list[str]]:
    """Load one configured source (new data, or a backfill window) into the database."""
    engine = make_engine(Settings.from_env().database_url)
    try:
        return run_source(engine, cfg, window)
    finally:
        engine.dispose()


def configured_sources(
    project: ProjectFile, params: IngestParams
) -> tuple[list[dict[str, object]], list[str]]:
    """Load the project file's sources (all, or the named ones; a window backfills).

    A source that fails entirely is a failure; the others still load.
    """
    configs = project.select_sources(params.sources)
    window = Window(params.start, params.end) if params.start and params.end else None
    results: list[dict[str, object]] = []
    failures: list[str] = []
    for cfg in configs:
        try:
            rows, failed = load_configured_source(cfg, window)
        except USER_ERRORS as exc:
            failures.append(f"source {cfg.name}: {exc}")
            continue
        results += rows
        failures += failed
    return results, failures


def _artifact_row(r: dict[str, object]) -> dict[str, object]:
    """One artifact row: which source (name and type) first, then the batch's counts."""
    kind = "bundled" if str(r["source"]).startswith("bundled:") else "file"
    head = {"source_name": r.get("source_name", ""), "source_type": r.get("source_type", kind)}
    skip = ("first_rejects", "source_name", "source_type")
    return head | {k: v for k, v in r.items() if k not in skip}


@flow(name="ingest", log_prints=True, on_failure=ALERT, on_crashed=ALERT)
def ingest(params: IngestParams | None = None) -> list[dict[str, object]]:
    """Load every file, bundled data set and configured source; return per-batch counts."""
    params = params or IngestParams()
    logger = get_run_logger()
    # The project (or sources) file is read at each run: its URLs, bundled sets and sources.
    project = load_project(params.config) if params.config is not None else None
    if project is not None:
        apply_environment(project)
    check_database()
    declare = SeriesSpec(params.kind, params.freq) if params.kind and params.freq else None
    results: list[dict[str, object]] = []
    failures: list[str] = []
    bundled = list(dict.fromkeys([*params.bundled, *(project.bundled if project else [])]))
    sources = [(p, None, declare) for p in params.paths] + [(None, n, None) for n in bundled]
    for path, name, spec in sources:
        # One unreadable file must not stop the others from loading.
        try:
            for batch in read_source(path, name, spec, params.layout if path else None):
                results.append(load_batch(batch, params.assume_timezone))
        except USER_ERRORS as exc:
            failures.append(str(exc))
    attempted = len(sources)
    if project is not None:  # mqtt, http, sql, files sources (flows/sources/)
        loaded, failed = configured_sources(project, params)
        results += loaded
        failures += failed
        attempted += len(loaded) + len(failed)
    for r in results:
        assert r["accepted"] + r["rejected"] == r["received"]  # type: ignore[operator]
        logger.info(
            "%s: received %s, accepted %s, rejected %s, inserted %s, updated %s%s",
            r["source"],
            r["received"],
            r["accepted"],
            r["rejected"],
            r["inserted"],
            r["updated"],
            " (already loaded)" if r["already_loaded"] else "",
        )
        for line in r["first_rejects"]:  # type: ignore[attr-defined]
            logger.warning("rejected %s", line)
    if results:
        table = [_artifact_row(r) for r in results]
        create_table_artifact(key="ingest-batches", table=table, description="Rows per batch")
    if failures:
        raise SeqcastError(
            f"{len(failures)} of {attempted} source(s) could not be loaded "
            f"(the other {len(results)} were): " + " | ".join(failures)
        )
    return results
