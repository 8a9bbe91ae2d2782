"""Documents and their labels or tag sequences: idempotent ingest with rejects, and reading back.

A batch is one source identified by ``(source, content_sha256)`` in ``ingest_batches``; it is
loaded in one transaction. Rows the caller could not parse arrive as rejects (line, reason) and
are stored in ``rejected_rows`` beside the rows rejected here, so ``accepted + rejected ==
received`` holds. Loading the same content again changes nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from db.ingest import IngestResult
from db.schema import document_labels, documents, ingest_batches, rejected_rows, series

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


def _upsert(conn: Connection, table: Any, rows: list[dict[str, Any]], keys: list[str]) -> None:
    if not rows:
        return
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = dialect_insert(table)
    columns = [c for c in rows[0] if c not in keys]
    stmt = stmt.on_conflict_do_update(
        index_elements=keys, set_={c: stmt.excluded[c] for c in columns}
    )
    for i in range(0, len(rows), _IN_CHUNK):
        conn.execute(stmt, rows[i : i + _IN_CHUNK])


def _batch_row(conn: Connection, batch_id: int) -> dict[str, Any]:
    return dict(
        conn.execute(select(ingest_batches).where(ingest_batches.c.batch_id == batch_id))
        .mappings()
        .one()
    )


def _result(row: dict[str, Any], already_loaded: bool) -> IngestResult:
    keys = ("received", "accepted", "rejected", "inserted", "updated")
    return IngestResult(
        batch_id=int(row["batch_id"]),
        source=str(row["source"]),
        already_loaded=already_loaded,
        **{k: int(row[k]) for k in keys},
    )


def ingest_documents(engine: Engine, batch: DocumentBatch) -> IngestResult:
    """Load one file's documents (and their ``batch.task`` labels) in one transaction."""
    find = select(ingest_batches.c.batch_id).where(
        ingest_batches.c.source == batch.source,
        ingest_batches.c.content_sha256 == batch.content_sha256,
        ingest_batches.c.status == "complete",
    )
    now = dt.datetime.now(dt.UTC)
    try:
        with engine.begin() as conn:
            prior = conn.execute(find).scalar_one_or_none()
            if prior is not None:
                return _result(_batch_row(conn, prior), already_loaded=True)
            known = set(conn.execute(select(series.c.series_id)).scalars().all())
            accepted, rejected = _validate(batch.rows, known, batch.source)
            batch_id = conn.execute(
                insert(ingest_batches).returning(ingest_batches.c.batch_id),
                {
                    "source": batch.source,
                    "content_sha256": batch.content_sha256,
                    **dict.fromkeys(("received", "accepted", "rejected", "inserted", "updated"), 0),
                    "started_at": now,
                    "finished_at": now,
                    "status": "loading",
                    "last_row": 0,
                },
            ).scalar_one()
            existing = _existing(conn, [r["doc_id"] for r in accepted])
            inserted = sum(r["doc_id"] not in existing for r in accepted)
            updated = sum(
                r["doc_id"] in existing and existing[r["doc_id"]] != r["content_sha256"]
                for r in accepted
            )
            doc_cols = ("doc_id", "source", "published_at", "text", "tokens", "series_id")
            _upsert(
                conn,
                documents,
                [
                    {
                        **{k: r[k] for k in doc_cols},
                        "content_sha256": r["content_sha256"],
                        "batch_id": batch_id,
                        "created_at": now,
                    }
                    for r in accepted
                ],
                ["doc_id"],
            )
            if batch.task:
                labelled = [r for r in accepted if r["label"] is not None or r["tags"] is not None]
                _upsert(
                    conn,
                    document_labels,
                    [
                        {
                            "doc_id": r["doc_id"],
                            "task": batch.task,
                            "label": r["label"],
                            "tags": r["tags"],
                            "scheme": batch.scheme,
                            "batch_id": batch_id,
                        }
                        for r in labelled
                    ],
                    ["doc_id", "task"],
                )
            rejects = [(line, reason, None) for line, reason in batch.read_rejects] + [
                (row.line, reason, row.text[:200]) for row, reason in rejected
            ]
            if rejects:
                conn.execute(
                    insert(rejected_rows),
                    [
                        {"batch_id": batch_id, "row_number": line, "reason": reason, "value": raw}
                        for line, reason, raw in sorted(rejects, key=lambda r: r[0])
                    ],
                )
            conn.execute(
                update(ingest_batches)
                .where(ingest_batches.c.batch_id == batch_id)
                .values(
                    received=len(batch.rows) + len(batch.read_rejects),
                    accepted=len(accepted),
                    rejected=len(rejects),
                    inserted=inserted,
                    updated=updated,
                    status="complete",
                    last_row=max((r.line for r in batch.rows), default=0),
                    finished_at=dt.datetime.now(dt.UTC),
                )
            )
            return _result(_batch_row(conn, batch_id), already_loaded=False)
    except IntegrityError:
        with engine.connect() as conn:  # the same file loaded concurrently: the winner's batch
            prior = conn.execute(find).scalar_one_or_none()
            if prior is None:
                raise
            return _result(_batch_row(conn, prior), already_loaded=True)


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
