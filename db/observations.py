"""Series and observations: declaring series and reading them back (ingest is in ingest.py)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import Connection, Engine, func, insert, select

from db.schema import observations, series


@dataclass(frozen=True)
class SeriesSpec:
    """How to declare series that a batch introduces."""

    kind: str
    freq: str
    unit: str | None = None
    source: str | None = None
    pattern: str | None = None  # declare only ids that fully match this regex; reject the rest


def declare_series(
    conn: Connection, series_ids: list[str], spec: SeriesSpec, now: dt.datetime
) -> int:
    """Insert series rows that do not exist yet; return how many were added."""
    if spec.pattern is not None:
        series_ids = [s for s in series_ids if re.fullmatch(spec.pattern, s)]
    if not series_ids:
        return 0
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


def known_series_ids(conn: Connection) -> set[str]:
    """All declared series ids."""
    return set(conn.execute(select(series.c.series_id)).scalars().all())


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
