"""Reading a model group's series from the database, with a hash of exactly what was read.

Training reads every observation it trains on (:func:`read_group`); a forecast reads only the
newest points each series' model needs (:func:`read_recent_group`), so its cost does not grow
with the history. The covariates a model takes come with them (:func:`read_group_covariates`):
all stored values of each, the forecast horizon's included.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd
from sqlalchemy import Engine

from db import make_engine
from db.covariates import covariate_kinds, read_attributes, read_covariates
from db.observations import list_series, read_observations
from db.recent import latest_series, read_recent_observations
from flows.errors import SeqcastError
from flows.series.params import ModelGroup
from flows.settings import Settings
from flows.tasks import io_task

if TYPE_CHECKING:  # the spec's module loads torch: only the trained model's callers need it
    from forecasting.spec import ForecasterSpec


@dataclass(frozen=True)
class GroupData:
    """A group's observations (long frame), each series' frequency, a content hash (of the
    covariates and attributes too), the covariates (``series_id, ts`` and one column each)
    and the static attributes (``series_id, name, value``), None when not taken."""

    frame: pd.DataFrame
    freqs: dict[str, str]
    sha256: str
    exogenous: pd.DataFrame | None = None
    static: pd.DataFrame | None = None

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


def read_group_covariates(
    engine: Engine,
    group: str,
    series_ids: list[str],
    spec: ForecasterSpec,
    since: dt.datetime | None = None,
) -> pd.DataFrame | None:
    """The covariates ``spec`` takes, for the group's series (None when it takes none);
    with ``since``, bounded as :func:`db.covariates.read_covariates` says.

    Raises:
        SeqcastError: a covariate has no stored values, or is stored as the other kind.
    """
    declared = {
        **dict.fromkeys(spec.exogenous, "known_future"),
        **dict.fromkeys(spec.past_covariates, "past_only"),
    }
    if not declared:
        return None
    stored = covariate_kinds(engine, list(declared))
    for name, kind in declared.items():
        if name not in stored:
            raise SeqcastError(
                f"group {group!r}: covariate {name!r} has no values in the covariates table; "
                f"ingest them (seqcast ingest covariates FILE --name {name} --kind {kind})"
            )
        if stored[name] != kind:
            raise SeqcastError(
                f"group {group!r}: covariate {name!r} is {kind} for this model but stored as "
                f"{stored[name]}; fix its kind in the group's covariates (project file)"
            )
    return read_covariates(engine, list(declared), dict.fromkeys(series_ids, group), since)


def read_group_attributes(
    engine: Engine, group: str, series_ids: list[str], names: tuple[str, ...]
) -> pd.DataFrame | None:
    """The static attributes ``names`` of the series as ``series_id, name, value`` (a number,
    or the category's text), None when none are taken.

    Raises:
        SeqcastError: an attribute no series has (the engine names a series lacking one).
    """
    if not names:
        return None
    stored = read_attributes(engine, series_ids, list(names))
    absent = [n for n in names if n not in set(stored["name"])]
    if absent:
        raise SeqcastError(
            f"group {group!r}: no series of it has attribute(s) {absent}; ingest them "
            f"(seqcast ingest attributes FILE --kind numeric|categorical --name {absent[0]})"
        )
    value = stored["value_num"].astype(object).where(stored["kind"] == "numeric")
    value = value.where(stored["kind"] == "numeric", stored["value_text"])
    return stored[["series_id", "name"]].assign(value=value)


def _with_inputs(
    data: GroupData, exogenous: pd.DataFrame | None, static: pd.DataFrame | None = None
) -> GroupData:
    """``data`` with its covariates and attributes, both folded into the snapshot hash."""
    if exogenous is None and static is None:
        return data
    h = hashlib.sha256(data.sha256.encode())
    for part in (exogenous, static):
        if part is not None:
            h.update(pd.util.hash_pandas_object(part.astype(str), index=False).to_numpy().tobytes())
    return GroupData(data.frame, data.freqs, h.hexdigest(), exogenous, static)


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


def read_group(engine: Engine, group: ModelGroup, spec: ForecasterSpec | None = None) -> GroupData:
    """Active series of the group, all their observations, and the covariates ``spec`` (by
    default the group's own) takes."""
    mine = group_catalog(list_series(engine, kind=group.series_kind), group)
    ids = mine["series_id"].tolist()
    frame = read_observations(engine, ids)
    freqs = dict(zip(mine["series_id"], mine["freq"], strict=True))
    data = GroupData(frame=frame, freqs=freqs, sha256=snapshot_hash(frame))
    spec = spec or group.spec(group.cells[0])
    return _with_inputs(
        data,
        read_group_covariates(engine, group.name, ids, spec),
        read_group_attributes(engine, group.name, ids, spec.static_attributes),
    )


def recent_cut(last_ts: pd.Timestamp, freq: str, points: int) -> pd.Timestamp:
    """The time ``points`` grid steps of ``freq`` before ``last_ts``."""
    return pd.Timestamp(last_ts) - points * pd.tseries.frequencies.to_offset(freq)


def read_recent_group(
    engine: Engine, group: ModelGroup, points: int, spec: ForecasterSpec | None = None
) -> GroupData:
    """Active series of the group and their observations of the last ``points`` grid steps,
    each series' range bounded in SQL (see :mod:`db.recent`), and the covariates ``spec``
    takes."""
    mine = group_catalog(latest_series(engine, kind=group.series_kind), group)
    cuts = {
        str(sid): recent_cut(last, str(freq), points).to_pydatetime()
        for sid, last, freq in zip(mine["series_id"], mine["last_ts"], mine["freq"], strict=True)
    }
    frame = read_recent_observations(engine, cuts)
    freqs = dict(zip(mine["series_id"], mine["freq"], strict=True))
    data = GroupData(frame=frame, freqs=freqs, sha256=snapshot_hash(frame))
    spec = spec or group.spec(group.cells[0])
    # Static attributes are not read: a model keeps those it was trained with.
    since = min(cuts.values(), default=None)
    return _with_inputs(data, read_group_covariates(engine, group.name, list(cuts), spec, since))


@io_task()
def read_group_data(
    group: ModelGroup, points: int | None = None, spec: ForecasterSpec | None = None
) -> GroupData:
    """Read the group's observations from the database: all of them, or (``points``) the last
    ``points`` grid steps of each series; and the covariates ``spec`` (a trained model's;
    default: the group's) takes."""
    engine = make_engine(Settings.from_env().database_url)
    try:
        return (
            read_group(engine, group, spec)
            if points is None
            else read_recent_group(engine, group, points, spec)
        )
    finally:
        engine.dispose()
