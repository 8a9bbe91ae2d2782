"""Each series' most recent observations: what a forecast reads, bounded per series in SQL.

Both queries walk the primary key ``(series_id, ts)`` from each series' newest end, so their
cost follows the number of series and of points asked for, not the length of the history
(``bench/forecast_reads.py`` measures it on SQLite and PostgreSQL).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import pandas as pd
from sqlalchemy import Engine, and_, func, or_, select

from db.schema import observations, series

# Series per statement: keeps the OR of per-series ranges well inside both databases' limits.
_CHUNK = 500


def latest_series(
    engine: Engine, kind: str | None = None, active_only: bool = True
) -> pd.DataFrame:
    """Declared series and the time of their newest observation (NaT: none yet).

    Unlike :func:`db.observations.list_series` it counts nothing: one index lookup per series.
    """
    newest = (
        select(func.max(observations.c.ts))
        .where(observations.c.series_id == series.c.series_id)
        .correlate(series)
        .scalar_subquery()
    )
    stmt = select(
        series.c.series_id,
        series.c.kind,
        series.c.freq,
        series.c.active,
        newest.label("last_ts"),
    ).order_by(series.c.series_id)
    if kind is not None:
        stmt = stmt.where(series.c.kind == kind)
    if active_only:
        stmt = stmt.where(series.c.active == 1)
    with engine.connect() as conn:
        rows = conn.execute(stmt).mappings().all()
    frame = pd.DataFrame(rows, columns=["series_id", "kind", "freq", "active", "last_ts"])
    frame["last_ts"] = pd.to_datetime(frame["last_ts"], utc=True)
    return frame


def read_recent_observations(engine: Engine, cuts: Mapping[str, dt.datetime]) -> pd.DataFrame:
    """Observations of each series in ``cuts`` at or after its cut, as a long frame
    ``series_id, ts (UTC), value`` sorted by series and time."""
    parts: list[pd.DataFrame] = []
    items = sorted(cuts.items())
    with engine.connect() as conn:
        for lo in range(0, len(items), _CHUNK):
            ranges = [
                and_(observations.c.series_id == sid, observations.c.ts >= cut)
                for sid, cut in items[lo : lo + _CHUNK]
            ]
            stmt = (
                select(observations.c.series_id, observations.c.ts, observations.c.value)
                .where(or_(*ranges))
                .order_by(observations.c.series_id, observations.c.ts)
            )
            parts.append(
                pd.DataFrame(conn.execute(stmt).all(), columns=["series_id", "ts", "value"])
            )
    frame = (
        pd.concat(parts, ignore_index=True)
        if parts
        else pd.DataFrame(columns=["series_id", "ts", "value"])
    )
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    frame["value"] = frame["value"].astype(float)
    return frame
