"""Groups of the project file against a real database: series assignment, derived settings with
where they came from, and one group's problem staying that group's."""

from __future__ import annotations

import hashlib

import pandas as pd
import pytest
from sqlalchemy import Engine

from db.ingest import ingest_observations
from db.observations import SeriesSpec, list_series, read_observations
from flows.errors import SeqcastError
from flows.project import GroupConfig, ProjectFile
from flows.series.groups import assign_series, resolve_group, resolve_groups
from tests.support import real_series


def _load(engine: Engine, frame: pd.DataFrame, kind: str, freq: str) -> None:
    raw = frame.astype(str).assign(row_number=range(2, len(frame) + 2), read_error="")
    sha = hashlib.sha256(raw.to_csv().encode()).hexdigest()
    result = ingest_observations(engine, raw, f"test:{kind}-{freq}", sha, SeriesSpec(kind, freq))
    # Real data: the sea-temperature file repeats a timestamp once (both readings rejected).
    assert result.accepted + result.rejected == result.received and result.rejected <= 2


@pytest.fixture
def three_frequencies(engine: Engine) -> Engine:
    _load(engine, real_series.sea_temperature_30min(), "sensor", "30min")
    _load(engine, real_series.lincoln_daily(), "weather", "D")
    _load(engine, real_series.unemployment_monthly(), "rate", "MS")
    return engine


def project(*groups: dict[str, object]) -> ProjectFile:
    return ProjectFile.model_validate({"groups": list(groups)})


def test_settings_are_derived_from_each_groups_series(three_frequencies: Engine) -> None:
    catalog = list_series(three_frequencies)
    p = project(
        {"name": "sea", "select": {"kind": "sensor"}, "horizon": 48},
        {"name": "weather", "select": {"match": "lincoln-*"}, "horizon": 7,
         "settings": {"hidden_size": 16}},
        {"name": "jobs", "select": {"ids": ["us-unemployment"]}, "horizon": 12},
    )  # fmt: skip
    frame = read_observations(three_frequencies, catalog["series_id"].tolist())
    groups, failed = resolve_groups(p.groups, p.groups, catalog, frame)
    assert failed == {}
    by_name = {g.name: g for g in groups}
    assert {n: g.season_length for n, g in by_name.items()} == {"sea": 48, "weather": 7, "jobs": 12}
    # The window holds whole seasons (patches) and leaves room for the horizon, and each
    # setting says where it came from.
    for g in groups:
        assert g.window % g.patch_len == 0 and g.window >= g.horizon
        assert g.test_size >= g.horizon and g.val_size >= g.horizon
        assert g.provenance["season_length"].startswith("derived: ")
        assert g.provenance["window"].startswith("derived: ")
        assert g.provenance["horizon"] == "project file"
    assert by_name["weather"].hidden_size == 16
    assert by_name["weather"].provenance["hidden_size"] == "project file"
    assert by_name["sea"].provenance["hidden_size"] == "default"
    # What was derived is the rule of forecasting.defaults, e.g. 7 seasons of 12 months.
    assert by_name["jobs"].window == 84, by_name["jobs"].provenance["window"]


def test_unconfigured_and_doubly_selected_series_are_listed(three_frequencies: Engine) -> None:
    catalog = list_series(three_frequencies)
    p = project(
        {"name": "first", "select": {"match": "lincoln-t*"}, "horizon": 7},
        {"name": "second", "select": {"kind": "weather"}, "horizon": 7},
    )
    a = assign_series(p.groups, catalog)
    assert sorted(a.unconfigured) == ["sst-buoy", "us-unemployment"]
    assert a.overlaps == {
        "lincoln-tmax": ["first", "second"],
        "lincoln-tmin": ["first", "second"],
    }
    assert a.members == {"first": ["lincoln-tmax", "lincoln-tmin"], "second": []}
    # The second group keeps nothing: it fails alone, naming itself; the first resolves.
    groups, failed = resolve_groups(p.groups, p.groups, catalog)
    assert [g.name for g in groups] == ["first"]
    assert "group 'second': no active series with observations" in failed["second"]


def test_a_group_over_two_frequencies_is_refused_naming_them(three_frequencies: Engine) -> None:
    cfg = GroupConfig.model_validate(
        {"name": "mixed", "select": {"regex": "(sst|us)-.*"}, "horizon": 6}
    )
    with pytest.raises(SeqcastError) as err:
        resolve_group(cfg, list_series(three_frequencies))
    message = str(err.value)
    assert "group 'mixed' selects series of 2 frequencies" in message
    assert "30min: sst-buoy" in message and "MS: us-unemployment" in message
    assert "add freq to the group's select" in message


def test_series_too_short_for_the_horizon_are_named_with_the_fix(
    three_frequencies: Engine,
) -> None:
    cfg = GroupConfig.model_validate(
        {"name": "weather", "select": {"kind": "weather"}, "horizon": 120}
    )
    with pytest.raises(SeqcastError) as err:
        resolve_group(cfg, list_series(three_frequencies))
    assert "group 'weather' (D, horizon 120)" in str(err.value)
    assert "lincoln-tmax" in str(err.value) and "lower the horizon" in str(err.value)


def test_derive_false_keeps_the_code_defaults(three_frequencies: Engine) -> None:
    cfg = GroupConfig.model_validate(
        {"name": "jobs", "select": {"kind": "rate"}, "horizon": 12, "derive": False,
         "settings": {"window": 36, "season_length": 12}}
    )  # fmt: skip
    group = resolve_group(cfg, list_series(three_frequencies))
    assert (group.window, group.normalize, group.max_epochs) == (36, "level", 20)
    assert group.provenance["normalize"] == "default"
