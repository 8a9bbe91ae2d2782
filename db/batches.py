"""Ingest batches: the bookkeeping every ingest (series and documents) shares.

A batch is one source (a file, a data set, a poll of a connector) identified by
``(source, content_sha256)`` in ``ingest_batches``. Its row is created with status
``loading`` and zero counts; each load step adds what it received, accepted and rejected and
how far in the source it got (``last_row``, so an interrupted load resumes where it stopped);
the last step marks it ``complete``. Loading content whose batch is complete is a no-op.

Rejected rows go to ``rejected_rows`` with their reason beside the counts, in the same
transaction, and :func:`record_rows` refuses counts where ``accepted + rejected != received``:
no row is dropped without a trace.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from db.engine import is_postgres
from db.schema import ingest_batches, rejected_rows
from db.upsert import upsert

_COUNTS = ("received", "accepted", "rejected", "inserted", "updated")


@dataclass(frozen=True)
class IngestResult:
    """Counts for one batch; ``accepted + rejected == received`` always."""

    batch_id: int
    source: str
    received: int
    accepted: int
    rejected: int
    inserted: int
    updated: int
    already_loaded: bool

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class BatchState(NamedTuple):
    """A batch's id and whether its load finished (a later load of it is then a no-op)."""

    batch_id: int
    complete: bool


def find_batch(conn: Connection, source: str, content_sha256: str) -> BatchState | None:
    """The batch of this content of ``source``, or None when no load of it ever began."""
    b = ingest_batches.c
    prior = conn.execute(
        select(b.batch_id, b.status).where(b.source == source, b.content_sha256 == content_sha256)
    ).first()
    return None if prior is None else BatchState(int(prior.batch_id), prior.status == "complete")


def create_batch(conn: Connection, source: str, content_sha256: str) -> int:
    """Insert a new batch (status ``loading``, zero counts) and return its id.

    Raises:
        IntegrityError: the batch exists already (another process may have just created it).
    """
    now = dt.datetime.now(dt.UTC)
    batch_id = conn.execute(
        insert(ingest_batches).returning(ingest_batches.c.batch_id),
        {
            "source": source,
            "content_sha256": content_sha256,
            **dict.fromkeys(_COUNTS, 0),
            "started_at": now,
            "finished_at": now,
            "status": "loading",
            "last_row": 0,
        },
    ).scalar_one()
    return int(batch_id)


def begin_batch(engine: Engine, source: str, content_sha256: str) -> BatchState:
    """Find the batch or create it, each in its own transaction.

    The new batch is committed before any row is loaded, so chunks loaded later in their own
    transactions can be resumed after a crash.
    """
    with engine.begin() as conn:
        prior = find_batch(conn, source, content_sha256)
    if prior is not None:
        return prior
    try:
        with engine.begin() as conn:
            return BatchState(create_batch(conn, source, content_sha256), complete=False)
    except IntegrityError:  # another process created it between our two transactions
        with engine.begin() as conn:
            found = find_batch(conn, source, content_sha256)
        if found is None:
            raise
        return found


def lock_batch(conn: Connection, batch_id: int) -> tuple[int, int]:
    """Lock the batch row until the transaction ends; return (last_row, received) so far.

    The lock (PostgreSQL; SQLite's write transaction already excludes other writers) makes two
    processes resuming the same batch load each chunk once.
    """
    stmt = select(ingest_batches.c.last_row, ingest_batches.c.received).where(
        ingest_batches.c.batch_id == batch_id
    )
    if is_postgres(conn):
        stmt = stmt.with_for_update()
    last_row, received = conn.execute(stmt).one()
    return int(last_row), int(received)


def _text_or_none(value: object) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return str(value)


def store_rejects(conn: Connection, batch_id: int, rejects: pd.DataFrame) -> None:
    """Store rejected rows with their reasons in the caller's transaction.

    Args:
        conn: the connection (and transaction) to write on.
        batch_id: the batch the rows were received in.
        rejects: one row per rejected source row: ``row_number`` and ``reason``, and any of
            ``series_id``, ``ts``, ``value`` as received (stored as text; missing is NULL).
            A row number stored already for this batch keeps its first reason.
    """
    if rejects.empty:
        return
    rows: list[dict[str, Any]] = [
        {
            "batch_id": batch_id,
            "row_number": int(r["row_number"]),
            **{c: _text_or_none(r.get(c)) for c in ("series_id", "ts", "value")},
            "reason": str(r["reason"]),
        }
        for r in rejects.to_dict("records")
    ]
    upsert(conn, rejected_rows, rows, keys=["batch_id", "row_number"], update=False)


def record_rows(
    conn: Connection,
    batch_id: int,
    *,
    received: int,
    accepted: int,
    rejects: pd.DataFrame,
    inserted: int,
    updated: int,
    last_row: int,
) -> None:
    """Store one load step's rejects and add its counts to the batch, in the caller's transaction.

    Args:
        conn: the connection (and transaction) that wrote the accepted rows.
        batch_id: the batch.
        received: source rows this step read.
        accepted: rows of them written (or found unchanged).
        rejects: the rest, with reasons (see :func:`store_rejects`).
        inserted: accepted rows that were new.
        updated: accepted rows that changed a stored row.
        last_row: the source row number up to which the batch is now loaded.

    Raises:
        ValueError: ``accepted + len(rejects) != received``: a row would go uncounted.
    """
    if accepted + len(rejects) != received:
        raise ValueError(
            f"batch {batch_id}: {accepted} accepted + {len(rejects)} rejected rows "
            f"!= {received} received"
        )
    store_rejects(conn, batch_id, rejects)
    b = ingest_batches.c
    conn.execute(
        update(ingest_batches)
        .where(b.batch_id == batch_id)
        .values(
            received=b.received + received,
            accepted=b.accepted + accepted,
            rejected=b.rejected + len(rejects),
            inserted=b.inserted + inserted,
            updated=b.updated + updated,
            last_row=last_row,
            finished_at=dt.datetime.now(dt.UTC),
        )
    )


def batch_result(conn: Connection, batch_id: int, already_loaded: bool) -> IngestResult:
    """The batch's counts as stored."""
    row = (
        conn.execute(select(ingest_batches).where(ingest_batches.c.batch_id == batch_id))
        .mappings()
        .one()
    )
    return IngestResult(
        batch_id=int(row["batch_id"]),
        source=str(row["source"]),
        already_loaded=already_loaded,
        **{k: int(row[k]) for k in _COUNTS},
    )


def finish_batch(conn: Connection, batch_id: int) -> IngestResult:
    """Mark the batch complete (a later load of the same content is a no-op); its counts."""
    conn.execute(
        update(ingest_batches)
        .where(ingest_batches.c.batch_id == batch_id)
        .values(status="complete", finished_at=dt.datetime.now(dt.UTC))
    )
    return batch_result(conn, batch_id, already_loaded=False)


def first_rejects(engine: Engine, batch_id: int, limit: int = 5) -> list[tuple[int, str]]:
    """The first ``limit`` rejected rows of a batch as (row number, reason)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(rejected_rows.c.row_number, rejected_rows.c.reason)
            .where(rejected_rows.c.batch_id == batch_id)
            .order_by(rejected_rows.c.row_number)
            .limit(limit)
        ).all()
    return [(int(n), str(r)) for n, r in rows]
