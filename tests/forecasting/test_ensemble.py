"""A median ensemble on the real glucose series: its forecasts and backtest windows are the
members' medians, it saves and loads as one weights_only-safe file, and it refuses members
that do not forecast the same thing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from forecasting.ensemble import ENSEMBLE_FORMAT, EnsembleForecaster, load_forecaster_file
from forecasting.forecaster import ArtifactError, ForecasterSpec, GlobalForecaster
from forecasting.models import RecurrentForecasterConfig
from forecasting.panel import PanelConfig
from forecasting.training import TrainConfig

FREQS = {"cgm-glucose": "5min"}
KEY = ["series_id", "ts", "step"]
Trained = tuple[list[GlobalForecaster], pd.DataFrame]


def _spec(cell: str, horizon: int = 4) -> ForecasterSpec:
    return ForecasterSpec(
        model=RecurrentForecasterConfig(cell=cell, window=24, horizon=horizon, hidden_size=8),  # type: ignore[arg-type]
        train=TrainConfig(max_epochs=1, windows_per_epoch=256, batch_size=64),
        panel=PanelConfig(test_size=40, val_size=300),
        season_length=24,
    )


@pytest.fixture(scope="module")
def trained(glucose: pd.DataFrame) -> Trained:
    torch.set_num_threads(1)
    # Ends before the 30-minute gap 106 readings from the end: every test window is observed.
    frame = glucose.iloc[-3100:-110].reset_index(drop=True)
    members = []
    for cell in ("lstm", "gru", "rnn"):  # three: the median is not the mean
        member = GlobalForecaster(_spec(cell))
        member.fit(frame, FREQS)
        members.append(member)
    return members, frame


def test_forecast_is_the_median_of_the_members_own_forecasts(trained: Trained) -> None:
    members, frame = trained
    ensemble = EnsembleForecaster(members, ["lstm v1", "gru v2", "rnn v3"])
    rows, skipped = ensemble.predict(frame)
    assert skipped == {}
    own = [m.predict(frame)[0].sort_values(KEY).reset_index(drop=True) for m in members]
    rows = rows.sort_values(KEY).reset_index(drop=True)
    assert len(rows) == 4
    pd.testing.assert_frame_equal(rows[KEY], own[0][KEY])
    for column in ("yhat", "yhat_lower", "yhat_upper"):
        stacked = np.stack([o[column].to_numpy() for o in own])  # [3, H]
        np.testing.assert_allclose(rows[column].to_numpy(), np.median(stacked, axis=0))
    # The members disagree, and the median is not their mean: a real combination is checked.
    stacked = np.stack([o["yhat"].to_numpy() for o in own])
    assert np.ptp(stacked, axis=0).min() > 1e-3
    assert not np.allclose(rows["yhat"].to_numpy(), stacked.mean(axis=0))
    assert (rows["yhat_lower"] <= rows["yhat"]).all() and (rows["yhat"] <= rows["yhat_upper"]).all()


def test_backtest_scores_its_own_median_forecasts_on_the_members_windows(trained: Trained) -> None:
    members, frame = trained
    ensemble = EnsembleForecaster(members)
    bt = ensemble.backtest()
    singles = [m.backtest() for m in members]
    assert bt.n_windows == singles[0].n_windows > 0
    # The last backtest window of each series: the members' medians, the same actuals.
    for k, example in enumerate(bt.examples):
        parts = np.stack([np.asarray(s.examples[k]["model"]) for s in singles])
        np.testing.assert_allclose(np.asarray(example["model"]), np.median(parts, axis=0))
        np.testing.assert_array_equal(
            np.asarray(example["actual"]), np.asarray(singles[0].examples[k]["actual"])
        )
    # Its metrics are its own, not any member's; the baselines are the same windows'.
    assert all(bt.summary["model"]["mae"] != s.summary["model"]["mae"] for s in singles)
    assert bt.summary["seasonal_naive"] == singles[0].summary["seasonal_naive"]
    # evaluate() on the same frame and holdout scores exactly the same windows.
    again = ensemble.evaluate(frame, members[0].spec.panel)
    assert again.n_windows == bt.n_windows
    assert again.summary["model"]["mase"] == pytest.approx(bt.summary["model"]["mase"])


def test_save_load_round_trip_is_weights_only_and_forecasts_the_same(
    trained: Trained, tmp_path: Path
) -> None:
    members, frame = trained
    ensemble = EnsembleForecaster(members, ["lstm v1", "gru v2", "rnn v3"])
    path = ensemble.save(tmp_path / "ensemble.pt")
    payload = torch.load(path, weights_only=True)
    assert payload["format"] == ENSEMBLE_FORMAT and len(payload["members"]) == 3
    loaded = EnsembleForecaster.load(path)
    assert loaded.labels == ["lstm v1", "gru v2", "rnn v3"]
    pd.testing.assert_frame_equal(loaded.predict(frame)[0], ensemble.predict(frame)[0])
    assert isinstance(load_forecaster_file(path), EnsembleForecaster)
    single = members[0].save(tmp_path / "single.pt")
    assert isinstance(load_forecaster_file(single), GlobalForecaster)
    with pytest.raises(ArtifactError, match="expected format"):
        GlobalForecaster.load(path)
    with pytest.raises(ArtifactError, match="expected format"):
        EnsembleForecaster.load(single)
    (tmp_path / "cut.pt").write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ArtifactError):
        load_forecaster_file(tmp_path / "cut.pt")


def test_members_that_forecast_other_things_are_refused(trained: Trained) -> None:
    members, frame = trained
    with pytest.raises(ValueError, match="at least two"):
        EnsembleForecaster(members[:1])
    other = GlobalForecaster(_spec("gru", horizon=6))
    other.fit(frame, FREQS)
    with pytest.raises(ValueError, match="differs from lstm"):
        EnsembleForecaster([members[0], other])
    with pytest.raises(ValueError, match="unknown combiner"):
        EnsembleForecaster(members, combine="mean")
    with pytest.raises(ValueError, match="fitted"):
        EnsembleForecaster([members[0], GlobalForecaster(_spec("gru"))])
