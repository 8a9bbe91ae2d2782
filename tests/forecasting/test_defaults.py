"""Settings derived from the data (forecasting.defaults): seasons, constraints, overrides."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from forecasting.defaults import (
    DefaultsError,
    DerivedSettings,
    derive_settings,
    gap_free_runs,
    parse_freq,
    season_lengths,
    seasonal_naive_wins,
)
from forecasting.forecaster import GlobalForecaster
from forecasting.models import RecurrentForecasterConfig
from forecasting.panel import PanelConfig
from forecasting.spec import ForecasterSpec
from forecasting.training import TrainConfig

SEASONS = {
    (288,): ["5min", "5T", "5Min"],
    (96,): ["15min", "15T"],
    (48,): ["30min", "30T"],
    (144,): ["10min"],
    (24, 168): ["h", "H", "1h", "1H", "60min", "60T"],
    (12, 84): ["2h"],
    (7,): ["D", "1D", "d", "24h"],
    (5,): ["B"],
    (52,): ["W", "W-SUN", "W-MON", "W-mon", "w", "7D"],
    (26,): ["2W"],
    (24,): ["SME", "SMS"],
    (12,): ["M", "ME", "MS", "BME", "BMS", "BM"],
    (4,): ["Q", "QE", "QS", "QS-DEC", "Q-DEC", "QE-NOV", "BQ", "BQE", "3ME"],
    (1,): ["Y", "YE", "YS", "A", "A-DEC", "AS", "BA", "YE-JUN", "2YE"],
}
FREQS = [f for aliases in SEASONS.values() for f in aliases]


@pytest.mark.parametrize(("alias", "expected"), [(a, s) for s, al in SEASONS.items() for a in al])
def test_season_lengths_of_every_spelling(alias: str, expected: tuple[int, ...]) -> None:
    assert season_lengths(alias) == expected


@pytest.mark.parametrize("alias", ["fortnight", "", "5x", "0h", "-1h"])
def test_unknown_alias_names_itself_and_what_to_write(alias: str) -> None:
    with pytest.raises(DefaultsError, match="5min, 15min, 30min, h, D, B, W, ME") as err:
        season_lengths(alias)
    assert repr(alias) in str(err.value)
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize("alias", ["10s", "7min", "2D", "bh"])
def test_step_without_a_standard_season_asks_for_season_length(alias: str) -> None:
    with pytest.raises(DefaultsError, match="give season_length"):
        season_lengths(alias)
    given = derive_settings(alias, 4, {"a": 500}, {"season_length": 6})
    assert given.values()["season_length"] == 6


def test_old_spellings_become_todays() -> None:
    assert [parse_freq(f).freqstr for f in ("5T", "H", "M", "Q-DEC", "A")] == [
        "5min", "h", "ME", "QE-DEC", "YE-DEC"
    ]  # fmt: skip


def spec_of(derived: DerivedSettings, hidden: int = 8) -> ForecasterSpec:
    """What ModelGroup.spec builds from these values (the engine's own checks run here)."""
    v = derived.values()
    return ForecasterSpec(
        model=RecurrentForecasterConfig(
            window=v["window"], horizon=derived.horizon, hidden_size=hidden, num_layers=1,
            normalize=v["normalize"], patch_len=v["patch_len"], seasonal_skip=v["seasonal_skip"],
        ),
        train=TrainConfig(
            max_epochs=v["max_epochs"], batch_size=v["batch_size"],
            learning_rate=v["learning_rate"], patience=v["patience"],
            windows_per_epoch=v["windows_per_epoch"], lr_schedule=v["lr_schedule"],
            loss_scale=v["loss_scale"],
        ),
        panel=PanelConfig(val_size=v["val_size"], test_size=v["test_size"]),
        season_length=v["season_length"],
    )  # fmt: skip


def check_constraints(d: DerivedSettings, lengths: dict[str, int]) -> None:
    v, h = d.values(), d.horizon
    spec_of(d)  # the spec and model config accept them
    assert 2 <= v["window"] <= 10_000 and v["test_size"] >= h and v["val_size"] >= h
    assert v["window"] % v["patch_len"] == 0
    assert v["seasonal_skip"] == 0 or h <= v["seasonal_skip"] <= v["window"]
    need = v["window"] + h + v["val_size"] + v["test_size"]
    assert set(d.too_short) == {k for k, n in lengths.items() if n < need}
    assert d.usable == len(lengths) - len(d.too_short) > 0
    for key in ("batch_size", "windows_per_epoch", "max_epochs", "patience"):
        assert 1 <= v[key] <= 65_536


lengths_st = st.dictionaries(
    st.text("abcdef", min_size=1, max_size=4), st.integers(1, 30_000), min_size=1, max_size=12
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(FREQS), st.integers(1, 400), lengths_st, st.booleans(), st.integers(0, 9))
def test_derived_settings_meet_the_engines_constraints(
    freq: str, horizon: int, lengths: dict[str, int], gappy: bool, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    runs = {k: list(rng.integers(1, n + 1, size=3)) for k, n in lengths.items()} if gappy else None
    try:
        d = derive_settings(freq, horizon, lengths, runs=runs)
    except DefaultsError as err:
        assert "no series is long enough" in str(err) and "ingest" in str(err)
        return
    check_constraints(d, lengths)
    assert all(s.source == "derived" for s in d.settings.values())


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(FREQS), st.integers(1, 100), lengths_st, st.integers(2, 600))
def test_a_given_window_is_kept_and_the_rest_follows(
    freq: str, horizon: int, lengths: dict[str, int], window: int
) -> None:
    try:
        d = derive_settings(freq, horizon, lengths, {"window": window})
    except DefaultsError as err:
        assert "no series is long enough" in str(err)
        return
    assert d.settings["window"].value == window and d.settings["window"].source == "given"
    check_constraints(d, lengths)


def test_hourly_derivation_and_its_reasons() -> None:
    d = derive_settings("H", 48, {f"s{i}": 960 for i in range(80)})
    v = d.values()
    assert [v[k] for k in ("season_length", "window", "patch_len", "seasonal_skip")] == [
        24,
        168,
    ] * 2
    assert [v[k] for k in ("val_size", "test_size", "normalize")] == [48, 48, "window"]
    assert "window = 168: 7 x season 24" in d.describe()
    assert d.freq == "h" and not d.too_short


def test_overrides_are_taken_and_what_follows_changes() -> None:
    lengths = {"long": 5000, "mid": 400}
    d = derive_settings("h", 24, lengths, {"window": 300, "normalize": "level", "hidden_size": 16})
    v = d.values()
    assert (v["window"], v["normalize"], v["hidden_size"]) == (300, "level", 16)
    assert 300 % v["patch_len"] == 0 and v["seasonal_skip"] == 168  # a week fits in 300
    assert "mid" in d.too_short and "long" not in d.too_short
    assert d.settings["normalize"].source == "given" and d.settings["patch_len"].source == "derived"
    shorter = derive_settings("h", 24, lengths, {"window": 100}).values()
    assert shorter["seasonal_skip"] == 24  # a week no longer fits: one day back


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"window": 50, "patch_len": 24}, "multiple of patch_len"),
        ({"seasonal_skip": 500}, "seasonal_skip 500"),
        ({"test_size": 10}, "test_size 10 is under one horizon"),
        ({"val_size": 0}, "val_size"),
        ({"window": "big"}, "whole number"),
        ({"window": 1}, r"window must lie in \[2, 10000\]"),
        ({"season_length": 0}, "season_length must be a whole number >= 1"),
        ({"seasonal_skip": -1}, "seasonal_skip must be a whole number >= 0"),
    ],
)
def test_overrides_that_break_a_constraint_are_refused(overrides: dict, message: str) -> None:
    with pytest.raises(DefaultsError, match=message):
        derive_settings("h", 24, {"a": 5000}, overrides)


def test_too_short_series_are_named_with_the_fix() -> None:
    d = derive_settings("h", 48, {"long": 2000, "tiny": 100})
    assert list(d.too_short) == ["tiny"] and d.usable == 1
    why = d.too_short["tiny"]
    assert why.startswith("100 points, needs ")
    assert all(fix in why for fix in ("lower the horizon", "shorter window", "ingest"))
    with pytest.raises(DefaultsError, match=r"no series is long enough \(2\): a: 10 points"):
        derive_settings("h", 48, {"a": 10, "b": 20})


def test_one_short_series_does_not_shrink_every_window() -> None:
    lengths = {f"s{i}": 1000 for i in range(20)} | {"short": 250}
    d = derive_settings("h", 24, lengths)
    assert d.values()["window"] == 168 and list(d.too_short) == ["short"]


def test_gaps_shorten_the_window() -> None:
    assert gap_free_runs(np.array([1.0, np.nan, 2.0, 3.0, np.nan, np.nan, 4.0])) == [1, 2, 1]
    assert gap_free_runs(np.array([np.nan])) == []
    lengths = {"cgm": 50_000}
    plain = derive_settings("5min", 12, lengths).values()
    gappy = derive_settings("5min", 12, lengths, runs={"cgm": [250] * 200}).values()
    assert plain["window"] == 2016 and plain["patch_len"] == 288
    assert gappy["window"] < 250 // 2 + 12 and gappy["window"] % gappy["patch_len"] == 0


def test_series_that_do_not_follow_their_season_get_level_norm_and_no_skip() -> None:
    rng = np.random.default_rng(0)
    daily_cycle = 10 * np.sin(np.arange(2000) * 2 * np.pi / 24) + rng.normal(0, 1, 2000)
    random_walk = np.cumsum(rng.normal(0, 1, 2000))
    assert seasonal_naive_wins([daily_cycle, daily_cycle, random_walk], 24, 12)
    assert not seasonal_naive_wins([random_walk, daily_cycle[:20]], 24, 12)
    assert not seasonal_naive_wins([daily_cycle], 1, 12)  # no season: nothing to win
    lengths = {"a": 2000}
    plain = derive_settings("h", 12, lengths, seasonal=False)
    assert plain.values()["normalize"] == "level" and plain.values()["seasonal_skip"] == 0
    assert "seasonal naive loses to naive" in plain.settings["seasonal_skip"].why
    assert derive_settings("h", 12, lengths, seasonal=True).values()["seasonal_skip"] == 168


def _unemployment() -> pd.DataFrame:
    path = resources.files("bokeh_sampledata") / "_data" / "unemployment1948.csv"
    raw = pd.read_csv(str(path)).drop(columns="Annual").melt("Year")
    ts = pd.to_datetime(raw["Year"].astype(str) + "-" + raw["variable"], format="%Y-%b", utc=True)
    return pd.DataFrame({"series_id": "us", "ts": ts, "value": raw["value"]}).sort_values("ts")


@pytest.mark.slow
def test_a_forecaster_built_from_derived_settings_fits_and_predicts() -> None:
    torch.set_num_threads(1)
    frame = _unemployment()
    d = derive_settings("MS", 12, {"us": len(frame)}, {"max_epochs": 2, "windows_per_epoch": 64})
    forecaster = GlobalForecaster(spec_of(d, hidden=8))
    forecaster.fit(frame, {"us": "MS"})
    forecast, skipped = forecaster.predict(frame)
    assert not skipped and len(forecast) == 12 and np.isfinite(forecast["yhat"]).all()
    summary = forecaster.backtest().summary
    assert {"model", "naive", "seasonal_naive"} <= set(summary)
