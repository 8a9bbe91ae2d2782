"""A selected forecaster refit on every point (forecasting.refit): trained and scaled through
the last observation, for the selected run's epochs (scratch) or a fine-tune from its weights."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from forecasting.forecaster import GlobalForecaster
from forecasting.models import RecurrentForecasterConfig
from forecasting.panel import PanelConfig, build_panel, refit_splits
from forecasting.refit import refit, refit_spec
from forecasting.spec import ForecasterSpec
from forecasting.training import TrainConfig

FREQS = {"a": "h", "b": "h"}


def _frame(n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    ts = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC")
    t = np.arange(n)
    # A level that rises over time: the newest points move the scaler.
    level = 0.02 * t + np.sin(t * 2 * np.pi / 24)
    parts = [
        pd.DataFrame({"series_id": s, "ts": ts, "value": k + level + rng.normal(size=n) * 0.1})
        for k, s in enumerate(FREQS)
    ]
    return pd.concat(parts, ignore_index=True)


def _spec() -> ForecasterSpec:
    return ForecasterSpec(
        model=RecurrentForecasterConfig(cell="gru", window=24, horizon=6, hidden_size=8),
        train=TrainConfig(max_epochs=4, windows_per_epoch=128, batch_size=32, patience=2),
        panel=PanelConfig(test_size=24, val_size=36),
        season_length=24,
    )


@pytest.fixture(scope="module")
def selected() -> tuple[GlobalForecaster, int]:
    f = GlobalForecaster(_spec())
    result = f.fit(_frame(), FREQS)
    return f, result.best_epoch


def test_refit_splits_train_on_every_point_and_watch_the_newest() -> None:
    panel = build_panel(_frame(), FREQS, PanelConfig())
    train, monitor = refit_splits(panel, PanelConfig(val_size=36))
    assert train.val_start.tolist() == panel.lengths.tolist() == train.test_start.tolist()
    assert monitor.val_start.tolist() == (panel.lengths - 36).tolist()
    assert monitor.test_start.tolist() == panel.lengths.tolist()


def test_refit_spec_runs_the_selected_epochs_without_early_stopping() -> None:
    spec = refit_spec(_spec(), best_epoch=3)
    assert spec.train.max_epochs == 3 and spec.train.patience == 3
    assert refit_spec(_spec(), 3, "finetune", finetune_epochs=1).train.max_epochs == 1
    assert spec.model == _spec().model and spec.panel == _spec().panel
    with pytest.raises(ValueError, match="refit mode"):
        refit_spec(_spec(), 3, "sideways")  # type: ignore[arg-type]


def test_scratch_refit_trains_and_scales_through_the_last_observation(
    selected: tuple[GlobalForecaster, int],
) -> None:
    chosen, best_epoch = selected
    frame = _frame()
    again, result = refit(chosen, best_epoch, frame, FREQS)
    assert len(result.history) == best_epoch
    panel = build_panel(frame, FREQS, PanelConfig())
    assert again.data_stats["points"] == int(panel.lengths.sum()) == chosen.data_stats["points"]
    # The selected model saw none of the last val_size + test_size points; the refit all.
    assert again.data_stats["train_windows"] > chosen.data_stats["train_windows"]
    assert again.data_stats["train_windows"] == sum(int(n) - 30 + 1 for n in panel.lengths)
    assert again.scaler is not None and chosen.scaler is not None
    for i in range(len(panel.series_ids)):
        everything = panel.series_values(i)
        assert again.scaler.mean[i] == pytest.approx(float(everything.mean()), rel=1e-5)
        assert chosen.scaler.mean[i] == pytest.approx(float(everything[:-60].mean()), rel=1e-5)
    # Intervals come from the selected model's held-out residuals, not in-sample ones.
    np.testing.assert_array_equal(again.residual_quantiles, chosen.residual_quantiles)
    rows, skipped = again.predict(frame)
    assert skipped == {} and len(rows) == 2 * 6 and np.isfinite(rows["yhat"]).all()


def test_finetune_refit_starts_from_the_selected_weights(
    selected: tuple[GlobalForecaster, int],
) -> None:
    chosen, best_epoch = selected
    start = {k: v.clone() for k, v in chosen.state_dict().items()}
    tuned, result = refit(chosen, best_epoch, _frame(), FREQS, "finetune", finetune_epochs=1)
    assert len(result.history) == 1
    assert tuned.warm_start_note.startswith("warm start")
    moved = [not torch.equal(start[k], v) for k, v in tuned.state_dict().items()]
    assert any(moved)  # trained further ...
    for k, v in chosen.state_dict().items():  # ... without touching the selected model
        assert torch.equal(start[k], v)
