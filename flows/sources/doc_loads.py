"""Document sources: what is new in each, loaded through the one document ingest path.

Every load ends in :func:`db.documents.ingest_documents` (validation, rejects with reasons,
``accepted + rejected == received``, a repeat of loaded content is a no-op), and the source's
watermark moves in the same transaction as the documents it covers.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from db.batches import first_rejects
from db.documents import DocumentBatch, DocumentRow, ingest_documents
from db.watermarks import WatermarkUpdate, read_watermark
from flows.errors import SeqcastError
from flows.sources.base import SourceFailure, format_ts, get_path
from flows.sources.doc_config import (
    DocFilesSource,
    DocHttpSource,
    DocSqlSource,
    DocumentSourceConfig,
)
from flows.sources.doc_files import SUFFIX_FORMATS, guess_format, read_document_batch
from flows.sources.folder import list_paths
from flows.sources.http import Clock, RateLimiter, auth_headers, build_url, fetch_json
from flows.sources.sql import (
    chunks_after,
    decode_mark,
    encode_mark,
    read_failed,
    source_engine,
)

DOC_SUFFIXES = tuple(s + z for s in SUFFIX_FORMATS for z in ("", ".gz", ".bz2"))


@dataclass(frozen=True)
class DocumentLoad:
    """One batch of documents and the watermark move that commits with it."""

    batch: DocumentBatch
    watermark: WatermarkUpdate | None


DocumentItems = Generator[DocumentLoad | SourceFailure, None, None]


def file_documents(cfg: DocFilesSource) -> DocumentItems:
    """One load per file; files loaded before are recognised by content hash."""
    for path in list_paths(cfg.name, cfg.path, DOC_SUFFIXES):
        try:
            fmt = cfg.format or guess_format(path)
            yield DocumentLoad(read_document_batch(path, fmt, cfg.task, cfg.label_column), None)
        except SeqcastError as exc:
            yield SourceFailure(str(path), str(exc))


def _optional(rec: Any, field: str | None) -> Any:
    if field is None:
        return None
    try:
        return get_path(rec, field)
    except KeyError:
        return None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def records_to_documents(
    cfg: DocHttpSource, records: list[Any]
) -> tuple[list[DocumentRow], list[tuple[int, str]]]:
    """One document per record (``line`` is its 1-based position); records without usable
    text are read rejects."""
    rows: list[DocumentRow] = []
    rejects: list[tuple[int, str]] = []
    for line, rec in enumerate(records, start=1):
        try:
            text = get_path(rec, cfg.text_field)
        except KeyError as exc:
            rejects.append((line, f"record has {exc.args[0]}"))
            continue
        if not isinstance(text, str):
            rejects.append((line, f"field {cfg.text_field!r} is {type(text).__name__}, not text"))
            continue
        published = _optional(rec, cfg.published_field)
        rows.append(
            DocumentRow(
                line=line,
                text=text,
                doc_id=_text(_optional(rec, cfg.id_field)),
                source=f"http:{cfg.name}",
                published_at=format_ts(published, cfg.timestamp_unit) if published else None,
                series_id=_text(_optional(rec, cfg.series_field)),
                label=_text(_optional(rec, cfg.label_field)),
            )
        )
    return rows, rejects


def _latest(cfg: DocHttpSource, records: list[Any]) -> dt.datetime | None:
    """The latest publication time among all records, rejected ones too: every record of the
    response is accounted for (accepted or rejected), so the next request starts after it."""
    times = []
    for rec in records:
        published = _optional(rec, cfg.published_field)
        try:
            text = format_ts(published, cfg.timestamp_unit) if published is not None else ""
            ts = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            continue  # the document ingest rejects it with the reason
        if ts.tzinfo is not None:
            times.append(ts.astimezone(dt.UTC))
    return max(times, default=None)


def http_documents(
    cfg: DocHttpSource, watermark: dict[str, Any], clock: Clock = time
) -> DocumentItems:
    """One request for ``[watermark, now)``; the watermark becomes the latest publication
    time returned (an API that repeats the boundary document repeats it harmlessly)."""
    label = f"http:{cfg.name}"
    mark = watermark.get("published_at")
    start = dt.datetime.fromisoformat(mark) if mark else cfg.start_time()
    end = dt.datetime.now(dt.UTC)
    limiter = RateLimiter(cfg.rate_per_second, clock)
    with httpx.Client(timeout=httpx.Timeout(cfg.timeout_s), follow_redirects=True) as client:
        try:
            url = build_url(cfg.url, "", start, end)
            body = fetch_json(client, url, auth_headers(cfg), cfg, limiter)
            records = get_path(body, cfg.records)
        except KeyError as exc:
            yield SourceFailure(label, f"source {cfg.name}: the response has {exc.args[0]}")
            return
        except SeqcastError as exc:
            yield SourceFailure(label, str(exc))
            return
    if not isinstance(records, list):
        yield SourceFailure(label, f"records path {cfg.records!r} is not a list")
        return
    rows, rejects = records_to_documents(cfg, records)
    latest = _latest(cfg, records)
    update = None
    if latest is not None and latest > start:
        update = WatermarkUpdate(cfg.name, {"published_at": latest.isoformat()})
    sha = hashlib.sha256(json.dumps(records, sort_keys=True, default=str).encode()).hexdigest()
    yield DocumentLoad(DocumentBatch(label, sha, cfg.task, rows, rejects), update)


def _sql_rows(cfg: DocSqlSource, rows: Any) -> list[DocumentRow]:
    out = []
    for line, r in enumerate(rows, start=1):
        m = r._mapping

        def col(name: str | None, m: Any = m) -> str | None:
            return None if name is None or m[name] is None else str(m[name])

        published = m[cfg.published_column] if cfg.published_column else None
        out.append(
            DocumentRow(
                line=line,
                text="" if m[cfg.text_column] is None else str(m[cfg.text_column]),
                doc_id=col(cfg.id_column),
                source=f"sql:{cfg.name}",
                published_at=format_ts(published, "iso") if published is not None else None,
                series_id=col(cfg.series_column),
                label=col(cfg.label_column),
            )
        )
    return out


def sql_documents(cfg: DocSqlSource, watermark: dict[str, Any]) -> DocumentItems:
    """Chunks of rows past the watermark column's stored value, oldest first."""
    engine = source_engine(cfg.name, cfg.resolved_url())
    table = sa.table(cfg.table, *[sa.column(n) for n in cfg.columns()], schema=cfg.db_schema)
    wm = table.c[cfg.watermark_column]
    label = f"sql:{cfg.name}"
    try:
        lo = decode_mark(watermark)
        for rows in chunks_after(engine, table, wm, lo, [wm.is_not(None)], cfg.chunk_rows):
            docs = _sql_rows(cfg, rows)
            sha = hashlib.sha256(
                json.dumps([[d.doc_id, d.text, d.label, d.published_at] for d in docs]).encode()
            ).hexdigest()
            mark = WatermarkUpdate(cfg.name, encode_mark(rows[-1]._mapping[wm.name]))
            yield DocumentLoad(DocumentBatch(label, sha, cfg.task, docs), mark)
    except SQLAlchemyError as exc:
        raise read_failed(cfg.name, cfg.table, engine, exc) from None
    finally:
        engine.dispose()


def document_items(engine: Engine, cfg: DocumentSourceConfig) -> DocumentItems:
    if isinstance(cfg, DocFilesSource):
        return file_documents(cfg)
    if isinstance(cfg, DocHttpSource):
        return http_documents(cfg, read_watermark(engine, cfg.name))
    return sql_documents(cfg, read_watermark(engine, cfg.name))


def run_document_source(
    engine: Engine,
    cfg: DocumentSourceConfig,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Load every batch a document source yields; return (per-batch counts, failures).

    A part that fails (one file, one request) is a failure; the rest still loads.
    """
    results: list[dict[str, Any]] = []
    failures: list[str] = []
    items = document_items(engine, cfg)
    try:
        for item in items:  # resumed only after the load below has committed
            if isinstance(item, SourceFailure):
                failures.append(f"{item.source}: {item.message}")
                continue
            result = ingest_documents(engine, item.batch, item.watermark)
            if result.accepted + result.rejected != result.received:  # pragma: no cover
                raise RuntimeError(f"counts do not reconcile for batch {result.batch_id}")
            shown = first_rejects(engine, result.batch_id) if result.rejected else []
            row = {
                "source_name": cfg.name,
                "source_type": cfg.type,
                "task": item.batch.task,
                **result.as_dict(),
                "first_rejects": [f"{item.batch.source}:{n}: {why}" for n, why in shown],
            }
            results.append(row)
            if on_result is not None:
                on_result(row)
    finally:
        items.close()
    return results, failures
