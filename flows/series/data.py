"""Reading a model group's series from the database, with a hash of exactly what was read.

Training reads every observation it trains on (:func:`read_group`); a forecast reads only the
newest points each series' model needs (:func:`read_recent_group`), so its cost does not grow
with the history.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import Engine

from db import make_engine
from db.observations import list_series, read_observations
from db.recent import latest_series, read_recent_observations
from flows.errors import SeqcastError
from flows.series.params import ModelGroup
from flows.settings import Settings
from flows.tasks import io_task


@dataclass(frozen=True)
class GroupData:
    """A group's observations (long frame), each series' frequency and a content hash."""

    frame: pd.DataFrame
    freqs: dict[str, str]
    sha256: str

    @property
    def rows(self) -> int:
        return len(self.frame)

    @property
    def last_ts(self) -> pd.Timestamp:
        return pd.Timestamp(self.frame["ts"].max())


def snapshot_hash(frame: pd.DataFrame) -> str:
    """SHA-256 over series ids, timestamps (ns) and values: equal data, equal hash."""
    h = hashlib.sha256()
    h.update("\x1f".join(frame["series_id"].astype(str)).encode())
    h.update(frame["ts"].astype("datetime64[ns, UTC]").astype("int64").to_numpy().tobytes())
    h.update(frame["value"].astype("float64").to_numpy().tobytes())
    return h.hexdigest()


def group_catalog(catalog: pd.DataFrame, group: ModelGroup) -> pd.DataFrame:
    """The rows of ``catalog`` (``db.observations.list_series`` or ``db.recent.latest_series``)
    that belong to ``group``.

    Raises:
        SeqcastError: named ids that are unknown or inactive, no series with observations, or
            series of more than one frequency (each named with its frequency).
    """
    selector = group.selector
    if group.series_ids is not None:
        missing = sorted(set(group.series_ids) - set(catalog["series_id"]))
        if missing:
            raise SeqcastError(f"group {group.name!r}: unknown or inactive series {missing}")
    mask = [
        selector.matches(str(sid), str(kind), str(freq))
        for sid, kind, freq in zip(
            catalog["series_id"], catalog["kind"], catalog["freq"], strict=True
        )
    ]
    observed = catalog["last_ts"].notna()  # both catalogs: NULL when a series has no points
    mine = catalog[pd.Series(mask, index=catalog.index, dtype=bool) & observed]
    if mine.empty:
        raise SeqcastError(
            f"group {group.name!r}: no active series with observations ({selector.describe()}); "
            "ingest data first (seqcast ingest) or change the group's selector"
        )
    freqs = mine.groupby("freq")["series_id"].apply(list)
    if len(freqs) > 1:
        listed = "; ".join(f"{f}: {', '.join(ids[:3])}{' ...' if len(ids) > 3 else ''}"
                           for f, ids in freqs.items())  # fmt: skip
        raise SeqcastError(
            f"group {group.name!r} selects series of {len(freqs)} frequencies ({listed}); "
            "one model needs one frequency: add freq to the group's select"
        )
    return mine


def read_group(engine: Engine, group: ModelGroup) -> GroupData:
    """Active series of the group and all their observations."""
    mine = group_catalog(list_series(engine, kind=group.series_kind), group)
    frame = read_observations(engine, mine["series_id"].tolist())
    freqs = dict(zip(mine["series_id"], mine["freq"], strict=True))
    return GroupData(frame=frame, freqs=freqs, sha256=snapshot_hash(frame))


def recent_cut(last_ts: pd.Timestamp, freq: str, points: int) -> pd.Timestamp:
    """The time ``points`` grid steps of ``freq`` before ``last_ts``."""
    return pd.Timestamp(last_ts) - points * pd.tseries.frequencies.to_offset(freq)


def read_recent_group(engine: Engine, group: ModelGroup, points: int) -> GroupData:
    """Active series of the group and their observations of the last ``points`` grid steps,
    each series' range bounded in SQL (see :mod:`db.recent`)."""
    mine = group_catalog(latest_series(engine, kind=group.series_kind), group)
    cuts = {
        str(sid): recent_cut(last, str(freq), points).to_pydatetime()
        for sid, last, freq in zip(mine["series_id"], mine["last_ts"], mine["freq"], strict=True)
    }
    frame = read_recent_observations(engine, cuts)
    freqs = dict(zip(mine["series_id"], mine["freq"], strict=True))
    return GroupData(frame=frame, freqs=freqs, sha256=snapshot_hash(frame))


@io_task()
def read_group_data(group: ModelGroup, points: int | None = None) -> GroupData:
    """Read the group's observations from the database: all of them, or (``points``) the last
    ``points`` grid steps of each series."""
    engine = make_engine(Settings.from_env().database_url)
    try:
        return (
            read_group(engine, group)
            if points is None
            else read_recent_group(engine, group, points)
        )
    finally:
        engine.dispose()
