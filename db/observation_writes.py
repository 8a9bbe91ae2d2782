"""Writing one chunk's accepted observations inside the caller's transaction (db.ingest).

Rows whose key no stored row can have are written straight into ``observations``: on SQLite
when no stored row falls in the chunk's time range of their series, on PostgreSQL row by row
when they lie before the first or after the last stored time of their series (first loads,
appends). The other rows are staged and merged with one ``INSERT ... ON CONFLICT``, after rows
repeating a key loaded by an earlier chunk of the same batch are taken out as rejects.

The check and the write must not be separated by another writer's insert. SQLite's immediate
transaction holds the database's write lock throughout. On PostgreSQL every chunk write first
takes transaction-scoped advisory locks on its series (hashed into
:data:`LOCK_BUCKETS` buckets, so a chunk of thousands of series takes a bounded number of
locks, in ascending order, so two writers cannot deadlock); a concurrent writer of the same
series waits until this transaction commits, and its own check, a new statement under READ
COMMITTED, then sees these rows. Readers are never blocked; writers of other series rarely
(only when their series share a bucket).
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Iterable

import numpy as np
import pandas as pd
from sqlalchemy import Connection, text

from db.bulk import SQLITE_TS_FORMAT, CopyColumn, copy_binary, sqlite_insert, utc_text
from db.engine import is_postgres

LOCK_NAMESPACE = 0x5EC0  # first key of seqcast's advisory locks: observation writes
# 256: a chunk of any number of series takes at most 256 of the server's shared lock slots
# (max_locks_per_transaction x max_connections, 6,400 by default). Every writer must use the
# same count: changing it is only safe while no older seqcast writes to the database.
LOCK_BUCKETS = 256


def series_lock_keys(series_ids: Iterable[str]) -> list[int]:
    """The advisory lock buckets of ``series_ids``, ascending (the same in every process)."""
    return sorted({zlib.crc32(s.encode()) % LOCK_BUCKETS for s in series_ids})


def lock_series(conn: Connection, series_ids: Iterable[str]) -> None:
    """PostgreSQL: hold the write locks of these series until the transaction ends."""
    conn.execute(
        text(
            # unnest yields the keys in array order: the locks are taken ascending
            "SELECT count(pg_advisory_xact_lock(:ns, k)) FROM unnest(CAST(:keys AS integer[])) k"
        ),
        {"ns": LOCK_NAMESPACE, "keys": series_lock_keys(series_ids)},
    )


def _columns(rows: pd.DataFrame, batch_id: int | None) -> list[CopyColumn]:
    columns = [
        CopyColumn("series_id", "text", rows["series_id"].to_numpy(dtype=object)),
        CopyColumn("ts", "timestamptz", rows["ts"]),
        CopyColumn("value", "float8", rows["value"].to_numpy(dtype=float)),
    ]
    if batch_id is None:
        return [*columns, CopyColumn("row_number", "int8", rows["row_number"].to_numpy())]
    return [*columns, CopyColumn("batch_id", "int4", batch_id)]


def _outside_stored_range(conn: Connection, accepted: pd.DataFrame) -> np.ndarray:
    """PostgreSQL: True for rows before the first or after the last stored time of their series.

    No stored row can have such a row's key. Two index probes per series.
    """
    bounds = conn.execute(
        text(
            "SELECT r.sid, b.lo, b.hi FROM unnest(CAST(:ids AS text[])) AS r(sid) "
            "CROSS JOIN LATERAL (SELECT min(o.ts) AS lo, max(o.ts) AS hi "
            "FROM observations o WHERE o.series_id = r.sid) b WHERE b.lo IS NOT NULL"
        ),
        {"ids": accepted["series_id"].unique().tolist()},
    ).all()
    if not bounds:
        return np.ones(len(accepted), dtype=bool)

    def naive_us(values: pd.Series | list[object]) -> np.ndarray:
        stamps = pd.DatetimeIndex(values).tz_convert("UTC").tz_localize(None)
        return stamps.as_unit("us").to_numpy()

    where = pd.Index([b[0] for b in bounds]).get_indexer(accepted["series_id"])  # -1: none
    lo, hi = naive_us([b[1] for b in bounds]), naive_us([b[2] for b in bounds])
    ts = naive_us(accepted["ts"])
    inside = (where >= 0) & (ts >= lo[where]) & (ts <= hi[where])  # where -1: masked anyway
    return ~inside


def _stage(conn: Connection, accepted: pd.DataFrame, analyze: bool) -> None:
    columns = ["series_id", "ts", "value", "row_number"]
    if is_postgres(conn):
        conn.execute(
            text(
                "CREATE TEMP TABLE IF NOT EXISTS stage_observations (series_id text, "
                "ts timestamptz, value double precision, row_number bigint) ON COMMIT DELETE ROWS"
            )
        )
        copy_binary(conn, "stage_observations", _columns(accepted, None), len(accepted))
        if analyze:
            # Only the repeat check joins the stage: without statistics the planner guesses a
            # few rows and picks nested loops that take minutes on large chunks.
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


def _stage_and_merge(
    conn: Connection, rows: pd.DataFrame, batch_id: int, check_repeats: bool
) -> tuple[int, int, pd.DataFrame | None]:
    _stage(conn, rows, analyze=check_repeats)
    repeats = _reject_repeats_within_batch(conn, batch_id) if check_repeats else None
    inserted, updated = _merge_staged(conn, batch_id)
    return inserted, updated, repeats


def write_accepted(
    conn: Connection, accepted: pd.DataFrame, batch_id: int, check_repeats: bool
) -> tuple[int, int, pd.DataFrame | None]:
    """Write a chunk's accepted rows inside the caller's transaction (see module docstring).

    ``check_repeats``: an earlier chunk of this batch has committed rows that these may repeat.
    Returns (inserted, updated, the rows rejected as repeats of earlier chunks of this batch,
    or None when not checked).
    """
    if not is_postgres(conn):
        if _insert_if_all_new(conn, accepted, batch_id):
            return len(accepted), 0, None
        return _stage_and_merge(conn, accepted, batch_id, check_repeats)
    lock_series(conn, accepted["series_id"].unique())
    new = _outside_stored_range(conn, accepted)
    fresh = accepted[new]
    copy_binary(conn, "observations", _columns(fresh, batch_id), len(fresh))
    if new.all():
        return len(fresh), 0, None
    inserted, updated, repeats = _stage_and_merge(conn, accepted[~new], batch_id, check_repeats)
    return len(fresh) + inserted, updated, repeats
