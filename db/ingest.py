"""Idempotent, resumable bulk ingest of observations with rejects.

A batch is one source (file, data set) identified by ``(source, content_sha256)``; its
bookkeeping (counts, rejects, resuming, already-loaded) is :mod:`db.batches`. It is loaded in
chunks, each in its own transaction that also advances the batch's ``last_row``, so memory
stays bounded by the chunk size and a load that dies half way resumes exactly where it
stopped. Within a batch the first row for a ``(series_id, ts)`` wins; later rows for the same
key are rejected as duplicates or conflicts.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, text

from db.batches import (
    IngestResult,
    batch_result,
    begin_batch,
    finish_batch,
    first_rejects,
    lock_batch,
    record_rows,
)
from db.bulk import POSTGRES_TS_FORMAT, SQLITE_TS_FORMAT, copy_csv, sqlite_insert, utc_text
from db.engine import is_postgres
from db.observations import SeriesSpec, declare_series, known_series_ids
from db.validation import validate_observations
from db.watermarks import WatermarkUpdate, advance_watermark

# Callers (flows, connectors) import the batch results and rejects from here, beside ingest.
__all__ = [
    "IngestResult",
    "begin_batch",
    "first_rejects",
    "ingest_chunks",
    "ingest_observations",
    "load_chunk",
]


def _stage(conn: Connection, accepted: pd.DataFrame) -> None:
    columns = ["series_id", "ts", "value", "row_number"]
    if is_postgres(conn):
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
    if is_postgres(conn):
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
        last_row, received = lock_batch(conn, batch_id)
        chunk = raw[raw["row_number"] > last_row]
        if chunk.empty:
            if raw.empty and watermark is not None:  # nothing new, the source still moved on
                advance_watermark(conn, watermark)
            return  # else committed by an earlier, interrupted attempt
        if declare is not None:
            ids = chunk["series_id"].dropna().astype(str).str.strip().unique().tolist()
            declare_series(conn, ids, declare, dt.datetime.now(dt.UTC))
        validated = validate_observations(chunk, known_series_ids(conn), assume_timezone)
        rejected, accepted = validated.rejected, len(validated.accepted)
        inserted = updated = 0
        if accepted:
            # received > 0: an earlier chunk of this batch has committed rows to repeat.
            inserted, updated, repeats = _write_accepted(
                conn, validated.accepted, batch_id, bool(received)
            )
            if repeats is not None:
                rejected = pd.concat([rejected, repeats], ignore_index=True)
                accepted -= len(repeats)
        record_rows(
            conn,
            batch_id,
            received=len(chunk),
            accepted=accepted,
            rejects=rejected,
            inserted=inserted,
            updated=updated,
            last_row=int(chunk["row_number"].max()),
        )
        if watermark is not None:
            advance_watermark(conn, watermark)


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
            return batch_result(conn, batch_id, already_loaded=True)
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
    with engine.begin() as conn:
        return finish_batch(conn, batch_id)


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
