"""Idempotent, resumable bulk ingest of observations with rejects.

A batch is one source (file, data set) identified by ``(source, content_sha256)``. It is
loaded in chunks, each in its own transaction that also advances the batch's ``last_row``,
so memory stays bounded by the chunk size and a load that dies half way resumes exactly
where it stopped. Within a batch the first row for a ``(series_id, ts)`` wins; later rows
for the same key are rejected as duplicates or conflicts.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from db.bulk import POSTGRES_TS_FORMAT, SQLITE_TS_FORMAT, copy_csv, sqlite_insert, utc_text
from db.observations import SeriesSpec, declare_series, known_series_ids
from db.schema import ingest_batches, rejected_rows
from db.validation import validate_observations
from db.watermarks import WatermarkUpdate, advance_watermark


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


def _result(row: dict[str, object], already_loaded: bool) -> IngestResult:
    return IngestResult(
        batch_id=int(row["batch_id"]),  # type: ignore[call-overload]
        source=str(row["source"]),
        received=int(row["received"]),  # type: ignore[call-overload]
        accepted=int(row["accepted"]),  # type: ignore[call-overload]
        rejected=int(row["rejected"]),  # type: ignore[call-overload]
        inserted=int(row["inserted"]),  # type: ignore[call-overload]
        updated=int(row["updated"]),  # type: ignore[call-overload]
        already_loaded=already_loaded,
    )


def _stage(conn: Connection, accepted: pd.DataFrame) -> None:
    columns = ["series_id", "ts", "value", "row_number"]
    if conn.dialect.name == "postgresql":
        conn.execute(
            text(
                "CREATE TEMP TABLE IF NOT EXISTS stage_observations (series_id text, "
                "ts timestamptz, value double precision, row_number bigint) ON COMMIT DELETE ROWS"
            )
        )
        ts = utc_text(accepted["ts"], POSTGRES_TS_FORMAT)
        copy_csv(conn, "stage_observations", accepted[columns].assign(ts=ts))
        # A temporary table has no statistics until analysed: without them the planner
        # guesses a few rows and picks nested loops that take minutes on large chunks.
        conn.execute(text("ANALYZE stage_observations"))
        return
    conn.execute(
        text(
            "CREATE TEMP TABLE IF NOT EXISTS stage_observations "
            "(series_id TEXT, ts TEXT, value REAL, row_number INTEGER)"
        )
    )
    conn.execute(text("DELETE FROM stage_observations"))
    rows = zip(
        accepted["series_id"].tolist(),
        utc_text(accepted["ts"], SQLITE_TS_FORMAT).tolist(),
        accepted["value"].tolist(),
        accepted["row_number"].tolist(),
        strict=True,
    )
    sqlite_insert(conn, "stage_observations", columns, rows)


def _insert_if_all_new(conn: Connection, accepted: pd.DataFrame, batch_id: int) -> bool:
    """SQLite: insert the rows directly when no stored row falls in their time range per series.

    Then no row can be a repeat, a conflict or an update (first loads, appends), so the stage
    and the upsert are not needed. SQLite's immediate transaction holds the write lock from the
    check to the insert. Returns False (nothing written) when some row may exist already.
    """
    if conn.dialect.name != "sqlite":  # concurrent writers could insert between check and write
        return False
    ts = utc_text(accepted["ts"], SQLITE_TS_FORMAT)  # fixed width: text order is time order
    per_series = pd.DataFrame({"series_id": accepted["series_id"], "ts": ts}).groupby(
        "series_id", sort=False
    )["ts"]
    first, last = per_series.min(), per_series.max()
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    probe = "SELECT 1 FROM observations WHERE series_id = ? AND ts BETWEEN ? AND ? LIMIT 1"
    for sid, lo, hi in zip(first.index, first, last, strict=True):
        if cursor.execute(probe, (sid, lo, hi)).fetchone() is not None:
            return False
    rows = zip(
        accepted["series_id"].tolist(),
        ts.tolist(),
        accepted["value"].tolist(),
        itertools.repeat(batch_id),
    )
    sqlite_insert(conn, "observations", ["series_id", "ts", "value", "batch_id"], rows)
    return True


def _reject_repeats_within_batch(conn: Connection, batch_id: int) -> pd.DataFrame:
    """Staged rows whose key this batch already loaded: take them out of the stage."""
    repeats = pd.DataFrame(
        conn.execute(
            text(
                "SELECT s.row_number, s.series_id, s.ts, s.value, "
                "CASE WHEN o.value = s.value THEN 1 ELSE 0 END AS same "
                "FROM stage_observations s JOIN observations o "
                "ON o.series_id = s.series_id AND o.ts = s.ts WHERE o.batch_id = :b"
            ),
            {"b": batch_id},
        ).all(),
        columns=["row_number", "series_id", "ts", "value", "same"],
    )
    if repeats.empty:
        return repeats.assign(reason=pd.Series(dtype=object))
    conn.execute(
        text(
            "DELETE FROM stage_observations WHERE EXISTS (SELECT 1 FROM observations o "
            "WHERE o.series_id = stage_observations.series_id "
            "AND o.ts = stage_observations.ts AND o.batch_id = :b)"
        ),
        {"b": batch_id},
    )
    repeats["reason"] = np.where(
        repeats["same"] == 1,
        "duplicate of a row loaded earlier in this batch",
        "conflicts with a value loaded earlier in this batch (the first is kept)",
    )
    return repeats.drop(columns="same")


def _merge_staged(conn: Connection, batch_id: int) -> tuple[int, int]:
    """Upsert staged rows into observations; return (inserted, updated).

    Rows whose stored value is the same are left alone and counted as neither.
    """
    upsert = (
        "INSERT INTO observations (series_id, ts, value, batch_id) "
        "SELECT series_id, ts, value, :batch_id FROM stage_observations {where_true}"
        "ON CONFLICT (series_id, ts) DO UPDATE SET value = excluded.value, "
        "batch_id = excluded.batch_id WHERE observations.value {distinct} excluded.value"
    )
    params = {"batch_id": batch_id}
    if conn.dialect.name == "postgresql":
        # One pass: a row the upsert inserted has no deleting transaction (xmax = 0), a row
        # it updated has this one.
        sql = upsert.format(where_true="", distinct="IS DISTINCT FROM")
        inserted, updated = conn.execute(
            text(
                f"WITH merged AS ({sql} RETURNING (xmax = 0) AS fresh) SELECT "
                "COUNT(*) FILTER (WHERE fresh), COUNT(*) FILTER (WHERE NOT fresh) FROM merged"
            ),
            params,
        ).one()
        return int(inserted), int(updated)
    inserted = conn.execute(
        text(
            "SELECT COUNT(*) FROM stage_observations s WHERE NOT EXISTS ("
            "SELECT 1 FROM observations o WHERE o.series_id = s.series_id AND o.ts = s.ts)"
        )
    ).scalar_one()
    # SQLite counts a row the upsert inserted or changed (not one it left alone); its parser
    # needs a WHERE before ON CONFLICT.
    changed = conn.execute(
        text(upsert.format(where_true="WHERE true ", distinct="IS NOT")), params
    ).rowcount
    return int(inserted), int(changed) - int(inserted)


def _text_or_none(value: object) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return str(value)


def _store_rejects(conn: Connection, batch_id: int, rejected: pd.DataFrame) -> None:
    if rejected.empty:
        return
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = dialect_insert(rejected_rows).on_conflict_do_nothing()  # resumed chunks
    conn.execute(
        stmt,
        [
            {
                "batch_id": batch_id,
                "row_number": int(r["row_number"]),
                "series_id": _text_or_none(r["series_id"]),
                "ts": _text_or_none(r["ts"]),
                "value": _text_or_none(r["value"]),
                "reason": str(r["reason"]),
            }
            for r in rejected.to_dict("records")
        ],
    )


def begin_batch(engine: Engine, source: str, content_sha256: str) -> tuple[int, bool]:
    """Create the batch, or find it: returns (batch_id, already complete)."""
    now = dt.datetime.now(dt.UTC)
    find = select(ingest_batches.c.batch_id, ingest_batches.c.status).where(
        ingest_batches.c.source == source, ingest_batches.c.content_sha256 == content_sha256
    )
    with engine.begin() as conn:
        prior = conn.execute(find).first()
        if prior is not None:
            return int(prior.batch_id), prior.status == "complete"
    try:
        with engine.begin() as conn:
            batch_id = conn.execute(
                insert(ingest_batches).returning(ingest_batches.c.batch_id),
                {
                    "source": source,
                    "content_sha256": content_sha256,
                    **dict.fromkeys(("received", "accepted", "rejected", "inserted", "updated"), 0),
                    "started_at": now,
                    "finished_at": now,
                    "status": "loading",
                    "last_row": 0,
                },
            ).scalar_one()
            return int(batch_id), False
    except IntegrityError:  # another process created it between our two transactions
        with engine.begin() as conn:
            prior = conn.execute(find).one()
            return int(prior.batch_id), prior.status == "complete"


def _write_accepted(
    conn: Connection, accepted: pd.DataFrame, batch_id: int, check_repeats: bool
) -> tuple[int, int, pd.DataFrame | None]:
    """Write a chunk's accepted rows inside the caller's transaction: directly when nothing
    stored overlaps them, else staged and merged. Returns (inserted, updated, the rows
    rejected as repeats of earlier chunks of this batch, or None when not checked)."""
    if _insert_if_all_new(conn, accepted, batch_id):
        return len(accepted), 0, None
    _stage(conn, accepted)
    repeats = _reject_repeats_within_batch(conn, batch_id) if check_repeats else None
    inserted, updated = _merge_staged(conn, batch_id)
    return inserted, updated, repeats


def load_chunk(
    engine: Engine,
    batch_id: int,
    raw: pd.DataFrame,
    declare: SeriesSpec | None = None,
    assume_timezone: str | None = None,
    watermark: WatermarkUpdate | None = None,
) -> None:
    """Validate and load one chunk of a batch in one transaction (see module docstring).

    ``raw`` has text columns ``series_id, ts, value``, ``row_number`` (ascending) and optionally
    ``read_error`` (a reason when the reader could not even split the row). ``watermark`` is
    merged into the source's stored watermark in the same transaction as the rows.
    """
    with engine.begin() as conn:
        lock = " FOR UPDATE" if conn.dialect.name == "postgresql" else ""
        last_row, received = conn.execute(
            text(f"SELECT last_row, received FROM ingest_batches WHERE batch_id = :b{lock}"),
            {"b": batch_id},
        ).one()
        chunk = raw[raw["row_number"] > last_row]
        if chunk.empty:
            if raw.empty and watermark is not None:  # nothing new, the source still moved on
                advance_watermark(conn, watermark)
            return  # else committed by an earlier, interrupted attempt
        if declare is not None:
            ids = chunk["series_id"].dropna().astype(str).str.strip().unique().tolist()
            declare_series(conn, ids, declare, dt.datetime.now(dt.UTC))
        validated = validate_observations(chunk, known_series_ids(conn), assume_timezone)
        rejected = validated.rejected
        inserted = updated = 0
        if len(validated.accepted):
            # received > 0: an earlier chunk of this batch has committed rows to repeat.
            inserted, updated, repeats = _write_accepted(
                conn, validated.accepted, batch_id, bool(received)
            )
            if repeats is not None:
                rejected = pd.concat([rejected, repeats], ignore_index=True)
        _store_rejects(conn, batch_id, rejected)
        b = ingest_batches.c
        conn.execute(
            update(ingest_batches)
            .where(b.batch_id == batch_id)
            .values(
                received=b.received + len(chunk),
                accepted=b.accepted + (len(chunk) - len(rejected)),
                rejected=b.rejected + len(rejected),
                inserted=b.inserted + inserted,
                updated=b.updated + updated,
                last_row=int(chunk["row_number"].max()),
                finished_at=dt.datetime.now(dt.UTC),
            )
        )
        if watermark is not None:
            advance_watermark(conn, watermark)


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


def finish_batch(engine: Engine, batch_id: int) -> IngestResult:
    """Mark the batch complete and return its counts."""
    with engine.begin() as conn:
        conn.execute(
            update(ingest_batches)
            .where(ingest_batches.c.batch_id == batch_id)
            .values(status="complete", finished_at=dt.datetime.now(dt.UTC))
        )
        row = (
            conn.execute(select(ingest_batches).where(ingest_batches.c.batch_id == batch_id))
            .mappings()
            .one()
        )
    return _result(dict(row), already_loaded=False)


def ingest_chunks(
    engine: Engine,
    chunks: Iterable[pd.DataFrame],
    source: str,
    content_sha256: str,
    declare: SeriesSpec | None = None,
    assume_timezone: str | None = None,
    watermark: WatermarkUpdate | None = None,
) -> IngestResult:
    """Load a whole source chunk by chunk; a complete earlier load of it is a no-op.

    ``watermark`` is committed with the last chunk, so it never covers rows not yet loaded.
    """
    batch_id, complete = begin_batch(engine, source, content_sha256)
    if complete:
        with engine.connect() as conn:
            row = (
                conn.execute(select(ingest_batches).where(ingest_batches.c.batch_id == batch_id))
                .mappings()
                .one()
            )
        return _result(dict(row), already_loaded=True)
    pending: pd.DataFrame | None = None
    for chunk in chunks:
        if pending is not None:
            load_chunk(engine, batch_id, pending, declare, assume_timezone)
        pending = chunk
    if pending is not None:
        load_chunk(engine, batch_id, pending, declare, assume_timezone, watermark)
    elif watermark is not None:  # an empty batch still moves the source on
        with engine.begin() as conn:
            advance_watermark(conn, watermark)
    return finish_batch(engine, batch_id)


def ingest_observations(
    engine: Engine,
    raw: pd.DataFrame,
    source: str,
    content_sha256: str,
    declare: SeriesSpec | None = None,
    assume_timezone: str | None = None,
) -> IngestResult:
    """Load one in-memory batch (see :func:`ingest_chunks`)."""
    return ingest_chunks(engine, [raw], source, content_sha256, declare, assume_timezone)
