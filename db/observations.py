"""Series and observations: declare series, idempotent bulk ingest with rejects, reads."""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, func, insert, select, text

from db.engine import is_postgres
from db.schema import ingest_batches, observations, rejected_rows, series
from db.validation import ValidatedBatch, validate_observations

# SQLAlchemy's SQLite DATETIME storage format; staged text must match it byte for byte so
# that the primary key and the views compare equal timestamps as equal strings.
_SQLITE_TS_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


@dataclass(frozen=True)
class SeriesSpec:
    """How to declare series that a batch introduces."""

    kind: str
    freq: str
    unit: str | None = None
    source: str | None = None


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


def declare_series(
    conn: Connection, series_ids: list[str], spec: SeriesSpec, now: dt.datetime
) -> int:
    """Insert series rows that do not exist yet; return how many were added."""
    existing = set(
        conn.execute(select(series.c.series_id).where(series.c.series_id.in_(series_ids)))
        .scalars()
        .all()
    )
    new = [s for s in dict.fromkeys(series_ids) if s and s not in existing]
    if new:
        conn.execute(
            insert(series),
            [
                {
                    "series_id": s,
                    "kind": spec.kind,
                    "freq": spec.freq,
                    "unit": spec.unit,
                    "source": spec.source,
                    "active": 1,
                    "created_at": now,
                }
                for s in new
            ],
        )
    return len(new)


def _stage_postgres(conn: Connection, accepted: pd.DataFrame) -> None:
    conn.execute(
        text(
            "CREATE TEMP TABLE IF NOT EXISTS stage_observations "
            "(series_id text, ts timestamptz, value double precision) ON COMMIT DELETE ROWS"
        )
    )
    buf = io.StringIO()
    accepted[["series_id", "ts", "value"]].to_csv(
        buf, index=False, header=False, date_format="%Y-%m-%dT%H:%M:%S.%f+00:00"
    )
    raw = conn.connection.driver_connection
    copy_sql = "COPY stage_observations (series_id, ts, value) FROM STDIN (FORMAT csv)"
    with raw.cursor() as cur, cur.copy(copy_sql) as cp:  # type: ignore[union-attr]
        cp.write(buf.getvalue())


def _stage_sqlite(conn: Connection, accepted: pd.DataFrame) -> None:
    conn.execute(
        text(
            "CREATE TEMP TABLE IF NOT EXISTS stage_observations "
            "(series_id TEXT, ts TEXT, value REAL)"
        )
    )
    conn.execute(text("DELETE FROM stage_observations"))
    ts_text = (
        accepted["ts"].dt.tz_convert("UTC").dt.tz_localize(None).dt.strftime(_SQLITE_TS_FORMAT)
    )
    rows = list(
        zip(
            accepted["series_id"].tolist(),
            ts_text.tolist(),
            accepted["value"].tolist(),
            strict=True,
        )
    )
    raw = conn.connection.driver_connection
    raw.executemany(  # type: ignore[union-attr]
        "INSERT INTO stage_observations (series_id, ts, value) VALUES (?, ?, ?)", rows
    )


def _merge_staged(conn: Connection, batch_id: int) -> tuple[int, int]:
    """Upsert staged rows into observations; return (inserted, updated)."""
    inserted = conn.execute(
        text(
            "SELECT COUNT(*) FROM stage_observations s WHERE NOT EXISTS ("
            "SELECT 1 FROM observations o WHERE o.series_id = s.series_id AND o.ts = s.ts)"
        )
    ).scalar_one()
    updated = conn.execute(
        text(
            "SELECT COUNT(*) FROM stage_observations s JOIN observations o "
            "ON o.series_id = s.series_id AND o.ts = s.ts WHERE o.value <> s.value"
        )
    ).scalar_one()
    distinct = "IS DISTINCT FROM" if conn.dialect.name == "postgresql" else "IS NOT"
    where_true = "" if conn.dialect.name == "postgresql" else "WHERE true "
    conn.execute(
        text(
            "INSERT INTO observations (series_id, ts, value, batch_id) "
            f"SELECT series_id, ts, value, :batch_id FROM stage_observations {where_true}"
            "ON CONFLICT (series_id, ts) DO UPDATE SET value = excluded.value, "
            f"batch_id = excluded.batch_id WHERE observations.value {distinct} excluded.value"
        ),
        {"batch_id": batch_id},
    )
    return int(inserted), int(updated)


def _text_or_none(value: object) -> str | None:
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)


def known_series_ids(conn: Connection) -> set[str]:
    """All declared series ids."""
    return set(conn.execute(select(series.c.series_id)).scalars().all())


def ingest_observations(
    engine: Engine,
    raw: pd.DataFrame,
    source: str,
    content_sha256: str,
    declare: SeriesSpec | None = None,
    assume_timezone: str | None = None,
) -> IngestResult:
    """Validate and load one batch in a single transaction.

    Args:
        engine: target database (migrated).
        raw: text columns ``series_id, ts, value, row_number`` exactly as read from the source.
        source: where the batch came from (file path, data set name).
        content_sha256: hash of the source content; the same source and hash load only once.
        declare: if given, series in the batch that are not yet declared are created with it.
        assume_timezone: zone for timestamps without an offset; None rejects such rows.

    Returns:
        Counts for the batch. Re-ingesting the same content returns the first batch's counts
        with ``already_loaded=True`` and changes nothing.
    """
    started = dt.datetime.now(dt.UTC)
    with engine.begin() as conn:
        prior = (
            conn.execute(
                select(ingest_batches).where(
                    ingest_batches.c.source == source,
                    ingest_batches.c.content_sha256 == content_sha256,
                )
            )
            .mappings()
            .first()
        )
        if prior is not None:
            return IngestResult(
                batch_id=prior["batch_id"],
                source=source,
                received=prior["received"],
                accepted=prior["accepted"],
                rejected=prior["rejected"],
                inserted=prior["inserted"],
                updated=prior["updated"],
                already_loaded=True,
            )
        if declare is not None and len(raw):
            ids = raw["series_id"].dropna().astype(str).str.strip().unique().tolist()
            declare_series(conn, ids, declare, started)
        batch: ValidatedBatch = validate_observations(raw, known_series_ids(conn), assume_timezone)
        batch_id = conn.execute(
            insert(ingest_batches).returning(ingest_batches.c.batch_id),
            {
                "source": source,
                "content_sha256": content_sha256,
                "received": batch.received,
                "accepted": len(batch.accepted),
                "rejected": len(batch.rejected),
                "inserted": 0,
                "updated": 0,
                "started_at": started,
                "finished_at": started,
            },
        ).scalar_one()
        inserted = updated = 0
        if len(batch.accepted):
            if is_postgres(engine):
                _stage_postgres(conn, batch.accepted)
            else:
                _stage_sqlite(conn, batch.accepted)
            inserted, updated = _merge_staged(conn, batch_id)
        if len(batch.rejected):
            conn.execute(
                insert(rejected_rows),
                [
                    {
                        "batch_id": batch_id,
                        "row_number": int(r["row_number"]),
                        "series_id": _text_or_none(r["series_id"]),
                        "ts": _text_or_none(r["ts"]),
                        "value": _text_or_none(r["value"]),
                        "reason": str(r["reason"]),
                    }
                    for r in batch.rejected.to_dict("records")
                ],
            )
        conn.execute(
            ingest_batches.update()
            .where(ingest_batches.c.batch_id == batch_id)
            .values(inserted=inserted, updated=updated, finished_at=dt.datetime.now(dt.UTC))
        )
    return IngestResult(
        batch_id=batch_id,
        source=source,
        received=batch.received,
        accepted=len(batch.accepted),
        rejected=len(batch.rejected),
        inserted=inserted,
        updated=updated,
        already_loaded=False,
    )


def list_series(engine: Engine, kind: str | None = None, active_only: bool = True) -> pd.DataFrame:
    """Declared series with their observation counts and time range."""
    stmt = (
        select(
            series.c.series_id,
            series.c.kind,
            series.c.freq,
            series.c.active,
            func.count(observations.c.ts).label("n_obs"),
            func.min(observations.c.ts).label("first_ts"),
            func.max(observations.c.ts).label("last_ts"),
        )
        .select_from(series.outerjoin(observations))
        .group_by(series.c.series_id, series.c.kind, series.c.freq, series.c.active)
        .order_by(series.c.series_id)
    )
    if kind is not None:
        stmt = stmt.where(series.c.kind == kind)
    if active_only:
        stmt = stmt.where(series.c.active == 1)
    with engine.connect() as conn:
        rows = conn.execute(stmt).mappings().all()
    return pd.DataFrame(
        rows, columns=["series_id", "kind", "freq", "active", "n_obs", "first_ts", "last_ts"]
    )


def read_observations(engine: Engine, series_ids: list[str]) -> pd.DataFrame:
    """Observations of ``series_ids`` as a long frame ``series_id, ts (UTC), value``, sorted."""
    stmt = (
        select(observations.c.series_id, observations.c.ts, observations.c.value)
        .where(observations.c.series_id.in_(series_ids))
        .order_by(observations.c.series_id, observations.c.ts)
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    frame = pd.DataFrame(rows, columns=["series_id", "ts", "value"])
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    frame["value"] = frame["value"].astype(float)
    return frame
