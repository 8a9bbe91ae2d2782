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
from collections.abc import Iterable

import pandas as pd
from sqlalchemy import Connection, Engine

from db.batches import (
    IngestResult,
    batch_result,
    begin_batch,
    finish_batch,
    first_rejects,
    lock_batch,
    record_rows,
)
from db.observation_writes import write_accepted
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


def _write_accepted(
    conn: Connection, accepted: pd.DataFrame, batch_id: int, check_repeats: bool
) -> tuple[int, int, pd.DataFrame | None]:
    """Write a chunk's accepted rows (see :func:`db.observation_writes.write_accepted`)."""
    return write_accepted(conn, accepted, batch_id, check_repeats)


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
