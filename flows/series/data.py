"""Reading a model group's series from the database, with a hash of exactly what was read."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import Engine

from db import make_engine
from db.observations import list_series, read_observations
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


def read_group(engine: Engine, group: ModelGroup) -> GroupData:
    """Active series of the group and all their observations."""
    catalog = list_series(engine, kind=group.series_kind)
    if group.series_ids is not None:
        missing = sorted(set(group.series_ids) - set(catalog["series_id"]))
        if missing:
            raise SeqcastError(f"group {group.name!r}: unknown or inactive series {missing}")
        catalog = catalog[catalog["series_id"].isin(group.series_ids)]
    catalog = catalog[catalog["n_obs"] > 0]
    if catalog.empty:
        raise SeqcastError(
            f"group {group.name!r}: no active series with observations "
            f"(kind={group.series_kind!r}); ingest data first (seqcast ingest)"
        )
    frame = read_observations(engine, catalog["series_id"].tolist())
    freqs = dict(zip(catalog["series_id"], catalog["freq"], strict=True))
    return GroupData(frame=frame, freqs=freqs, sha256=snapshot_hash(frame))


@io_task()
def read_group_data(group: ModelGroup) -> GroupData:
    """Read the group's observations from the database."""
    engine = make_engine(Settings.from_env().database_url)
    try:
        return read_group(engine, group)
    finally:
        engine.dispose()
