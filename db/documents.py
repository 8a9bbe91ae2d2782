"""Documents and their labels or tag sequences: idempotent ingest with rejects, and reading back.

A batch is one source identified by ``(source, content_sha256)`` in ``ingest_batches`` (the
bookkeeping is :mod:`db.batches`, shared with series ingest); it is loaded in one
transaction. Rows the caller could not parse arrive as rejects (line, reason) and are stored
in ``rejected_rows`` beside the rows rejected here, so ``accepted + rejected == received``
holds. Loading the same content again changes nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import IntegrityError

from db.batches import (
    IngestResult,
    batch_result,
    create_batch,
    find_batch,
    finish_batch,
    record_rows,
)
from db.observations import known_series_ids
from db.schema import document_labels, documents
from db.upsert import upsert
from db.watermarks import WatermarkUpdate, advance_watermark

_IN_CHUNK = 500


@dataclass(frozen=True)
class DocumentRow:
    """One document as read from a file, before validation.

    ``published_at`` is ISO 8601 text with an offset (or None); ``label`` for classification,
    ``tokens`` and ``tags`` for tagging; ``line`` is where it starts in the source.
    """

    line: int
    text: str
    doc_id: str | None = None
    source: str | None = None
    published_at: str | None = None
    series_id: str | None = None
    label: str | None = None
    tokens: Sequence[str] | None = None
    tags: Sequence[str] | None = None


@dataclass(frozen=True)
class DocumentBatch:
    """What one file holds: rows to validate, rows already rejected by the reader."""

    source: str
    content_sha256: str
    task: str | None
    rows: list[DocumentRow]
    read_rejects: list[tuple[int, str]] = field(default_factory=list)
    scheme: str | None = None


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _parse_time(value: str | None) -> tuple[dt.datetime | None, str | None]:
    if value is None or not value.strip():
        return None, None
    try:
        ts = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None, f"unparseable published_at {value[:40]!r}"
    if ts.tzinfo is None:
        return None, f"published_at {value[:40]!r} has no UTC offset; write e.g. +00:00"
    return ts.astimezone(dt.UTC), None


def _validate(
    rows: list[DocumentRow], known_series: set[str], default_source: str
) -> tuple[list[dict[str, Any]], list[tuple[DocumentRow, str]]]:
    accepted: dict[str, dict[str, Any]] = {}
    first_line: dict[str, int] = {}
    rejected: list[tuple[DocumentRow, str]] = []
    for row in rows:
        text = row.text.strip()
        if not text:
            rejected.append((row, "empty document"))
            continue
        published, problem = _parse_time(row.published_at)
        sid = (row.series_id or "").strip() or None
        if problem is None and sid is not None and sid not in known_series:
            problem = f"unknown series {sid!r}; declare it first (seqcast ingest --kind --freq)"
        if problem is None and row.tags is not None and len(row.tags) != len(row.tokens or ()):
            problem = "tags and tokens differ in length"
        if problem is not None:
            rejected.append((row, problem))
            continue
        doc_id = (row.doc_id or "").strip() or text_sha256(text)[:24]
        record = {
            "doc_id": doc_id,
            "source": (row.source or "").strip() or default_source,
            "published_at": published,
            "text": text,
            "tokens": list(row.tokens) if row.tokens is not None else None,
            "series_id": sid,
            "content_sha256": text_sha256(text),
            "label": row.label.strip() if row.label else None,
            "tags": list(row.tags) if row.tags is not None else None,
        }
        if doc_id in accepted:
            same = all(accepted[doc_id][k] == record[k] for k in ("text", "label", "tags"))
            rejected.append(
                (
                    row,
                    f"duplicate of line {first_line[doc_id]}"
                    if same
                    else f"conflicts with line {first_line[doc_id]} for doc_id {doc_id!r} "
                    "(the first is kept)",
                )
            )
            continue
        accepted[doc_id], first_line[doc_id] = record, row.line
    return list(accepted.values()), rejected


def _existing(conn: Connection, doc_ids: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for i in range(0, len(doc_ids), _IN_CHUNK):
        part = doc_ids[i : i + _IN_CHUNK]
        found.update(
            conn.execute(
                select(documents.c.doc_id, documents.c.content_sha256).where(
                    documents.c.doc_id.in_(part)
                )
            ).all()
        )
    return found


def _write(
    conn: Connection, batch: DocumentBatch, accepted: list[dict[str, Any]], batch_id: int
) -> tuple[int, int]:
    """Upsert the accepted documents and their ``batch.task`` labels; return (inserted, updated).

    A document stored with the same text is counted as neither.
    """
    existing = _existing(conn, [r["doc_id"] for r in accepted])
    inserted = sum(r["doc_id"] not in existing for r in accepted)
    updated = sum(
        r["doc_id"] in existing and existing[r["doc_id"]] != r["content_sha256"] for r in accepted
    )
    now = dt.datetime.now(dt.UTC)
    doc_cols = ("doc_id", "source", "published_at", "text", "tokens", "series_id", "content_sha256")
    upsert(
        conn,
        documents,
        [
            {**{k: r[k] for k in doc_cols}, "batch_id": batch_id, "created_at": now}
            for r in accepted
        ],
        keys=["doc_id"],
    )
    if batch.task:
        labels = [
            {
                "doc_id": r["doc_id"],
                "task": batch.task,
                "label": r["label"],
                "tags": r["tags"],
                "scheme": batch.scheme,
                "batch_id": batch_id,
            }
            for r in accepted
            if r["label"] is not None or r["tags"] is not None
        ]
        upsert(conn, document_labels, labels, keys=["doc_id", "task"])
    return inserted, updated


def _rejects(batch: DocumentBatch, rejected: list[tuple[DocumentRow, str]]) -> pd.DataFrame:
    """The reader's rejects and the ones found here: line, reason and the start of the text."""
    rows = [(line, reason, None) for line, reason in batch.read_rejects] + [
        (row.line, reason, row.text[:200]) for row, reason in rejected
    ]
    return pd.DataFrame(rows, columns=["row_number", "reason", "value"])


def ingest_documents(
    engine: Engine, batch: DocumentBatch, watermark: WatermarkUpdate | None = None
) -> IngestResult:
    """Load one file's documents (and their ``batch.task`` labels) in one transaction.

    Content of ``batch.source`` loaded before is not loaded again: the result then has the
    earlier load's counts and ``already_loaded`` set. ``watermark`` (a document source's
    progress) is merged in the same transaction, also when the content was loaded before.
    """
    try:
        with engine.begin() as conn:
            if watermark is not None:
                advance_watermark(conn, watermark)
            prior = find_batch(conn, batch.source, batch.content_sha256)
            if prior is not None and prior.complete:
                return batch_result(conn, prior.batch_id, already_loaded=True)
            batch_id = create_batch(conn, batch.source, batch.content_sha256)
            accepted, rejected = _validate(batch.rows, known_series_ids(conn), batch.source)
            inserted, updated = _write(conn, batch, accepted, batch_id)
            record_rows(
                conn,
                batch_id,
                received=len(batch.rows) + len(batch.read_rejects),
                accepted=len(accepted),
                rejects=_rejects(batch, rejected),
                inserted=inserted,
                updated=updated,
                last_row=max((r.line for r in batch.rows), default=0),
            )
            return finish_batch(conn, batch_id)
    except IntegrityError:
        with engine.connect() as conn:  # the same file loaded concurrently: the winner's batch
            prior = find_batch(conn, batch.source, batch.content_sha256)
            if prior is None or not prior.complete:
                raise
            return batch_result(conn, prior.batch_id, already_loaded=True)


def read_labelled_documents(engine: Engine, task: str) -> pd.DataFrame:
    """Documents labelled for ``task``: doc_id, text, tokens, label, tags, scheme (by doc_id)."""
    stmt = (
        select(
            documents.c.doc_id,
            documents.c.text,
            documents.c.tokens,
            document_labels.c.label,
            document_labels.c.tags,
            document_labels.c.scheme,
        )
        .join(document_labels, document_labels.c.doc_id == documents.c.doc_id)
        .where(document_labels.c.task == task)
        .order_by(documents.c.doc_id)
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).mappings().all()
    return pd.DataFrame(
        [dict(r) for r in rows], columns=["doc_id", "text", "tokens", "label", "tags", "scheme"]
    )
