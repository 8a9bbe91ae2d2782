"""Training behaviour: clipping bounds the update, loss falls on real data, runs reproduce."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from forecasting.forecaster import ForecasterSpec, GlobalForecaster
from forecasting.losses import clearly_better
from forecasting.models import LSTMForecaster, RecurrentForecasterConfig
from forecasting.panel import PanelConfig
from forecasting.training import TrainConfig, TrainingDiverged, WindowData, fit
from forecasting.windows import WindowIndex, WindowSpec


def _data(values: np.ndarray, spec: WindowSpec) -> WindowData:
    n = len(values) - spec.span + 1
    starts = np.arange(n)
    return WindowData(
        torch.as_tensor(values, dtype=torch.float32),
        WindowIndex.from_starts(starts[: n // 2]),
        WindowIndex.from_starts(starts[n // 2 :]),
        spec,
    )


def test_clipping_bounds_the_update_and_records_the_preclip_norm() -> None:
    spec = WindowSpec(8, 2)
    model = LSTMForecaster(
        RecurrentForecasterConfig(
            cell="lstm", window=8, horizon=2, hidden_size=8, num_layers=1, normalize="none"
        )
    )
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    values = np.linspace(0, 1, 200) * 1e4  # targets far from the output: a huge gradient
    cfg = TrainConfig(
        max_epochs=1,
        batch_size=16,
        windows_per_epoch=16,
        optimizer="sgd",
        learning_rate=1.0,
        clip_norm=0.01,
        loss="mse",
    )
    result = fit(model, _data(values, spec), cfg)
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    step = float(torch.linalg.vector_norm(after - before))
    assert result.grad_norms[0] > 100.0  # what the gradient really was
    assert step <= 0.01 * 1.0001  # what SGD was allowed to do with it: lr * clip_norm


def test_non_finite_loss_stops_training_with_a_reason() -> None:
    spec = WindowSpec(8, 2)
    values = np.linspace(0, 1, 200)
    values[50:60] = np.nan
    model = LSTMForecaster(
        RecurrentForecasterConfig(window=8, horizon=2, hidden_size=4, num_layers=1)
    )
    with pytest.raises(TrainingDiverged, match="non-finite"):
        fit(model, _data(values, spec), TrainConfig(max_epochs=2, windows_per_epoch=None))


def _glucose_spec(cell: str, epochs: int = 4) -> ForecasterSpec:
    return ForecasterSpec(
        model=RecurrentForecasterConfig(
            cell=cell, window=36, horizon=6, hidden_size=16, num_layers=1
        ),
        train=TrainConfig(max_epochs=epochs, windows_per_epoch=2048, batch_size=64, patience=10),
        panel=PanelConfig(test_size=120, val_size=600),
        season_length=288,
    )


@pytest.mark.slow
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_loss_goes_down_on_real_glucose_and_beats_naive(glucose: pd.DataFrame, cell: str) -> None:
    frame = glucose.iloc[-12_000:]
    forecaster = GlobalForecaster(_glucose_spec(cell))
    result = forecaster.fit(frame, {"cgm-glucose": "5min"})
    train_losses = [h["train_loss"] for h in result.history]
    assert train_losses[-1] < train_losses[0]
    assert result.best_val_loss <= result.history[0]["val_loss"]
    bt = forecaster.backtest()
    assert bt.n_windows > 0
    assert bt.summary["model"]["mae"] < bt.summary["naive"]["mae"]
    assert bt.summary["model"]["mae"] < bt.summary["seasonal_naive"]["mae"]
    # Errors by horizon step pool the same windows: one series, so their mean is its MAE.
    assert bt.per_step is not None and list(bt.per_step["step"]) == [1, 2, 3, 4, 5, 6]
    assert set(bt.per_step["n"]) == {bt.n_windows}
    for method, column in (("model", "model_mae"), ("naive", "naive_mae")):
        assert bt.per_step[column].mean() == pytest.approx(bt.summary[method]["mae"], rel=1e-9)


@pytest.mark.slow
def test_same_seed_same_history_and_best_weights_restored(glucose: pd.DataFrame) -> None:
    frame = glucose.iloc[-6_000:]
    runs = []
    for _ in range(2):
        f = GlobalForecaster(_glucose_spec("gru", epochs=3))
        runs.append((f.fit(frame, {"cgm-glucose": "5min"}), f))
    assert runs[0][0].history == runs[1][0].history
    torch.testing.assert_close(runs[0][1].model.state_dict(), runs[1][1].model.state_dict())


def test_initial_weights_depend_only_on_the_seed() -> None:
    spec = _glucose_spec("lstm")
    first = GlobalForecaster(spec).model.state_dict()
    torch.rand(1000)  # disturb the global generator
    second = GlobalForecaster(spec).model.state_dict()
    torch.testing.assert_close(first, second)


def test_stocks_short_series_are_excluded_not_fatal(stocks: pd.DataFrame) -> None:
    spec = ForecasterSpec(
        model=RecurrentForecasterConfig(window=20, horizon=5, hidden_size=8, num_layers=1),
        train=TrainConfig(max_epochs=1, windows_per_epoch=256),
        panel=PanelConfig(test_size=50, val_size=150),
        season_length=5,
    )
    forecaster = GlobalForecaster(spec)
    forecaster.fit(stocks, {s: "B" for s in stocks["series_id"].unique()})
    assert set(forecaster.excluded) == {"stock-FB"}  # 196 trading days, needs 225
    rows, skipped = forecaster.predict(stocks)
    assert "stock-FB" in skipped
    assert set(rows["series_id"]) == {"stock-AAPL", "stock-GOOG", "stock-IBM", "stock-MSFT"}
    assert (rows.groupby("series_id")["step"].apply(list) == [[1, 2, 3, 4, 5]] * 4).all()
    assert (rows["yhat_lower"] <= rows["yhat"]).all() and (rows["yhat"] <= rows["yhat_upper"]).all()


@pytest.mark.slow
def test_the_time_budget_is_honoured_within_ten_percent(glucose: pd.DataFrame) -> None:
    # Long enough that a step stalled by a busy machine (up to 2 s seen) stays inside 10 %.
    budget = 20.0
    values = glucose["value"].to_numpy(dtype=np.float64)
    values = (values - values.mean()) / values.std()
    spec = WindowSpec(48, 12)
    model = LSTMForecaster(
        RecurrentForecasterConfig(window=48, horizon=12, hidden_size=32, num_layers=2)
    )
    data = _data(values, spec)
    # A process's first training step pays for thread pools and kernel set-up (seconds on a
    # busy machine), which no budget can cut: take it before the timed fit.
    fit(model, data, TrainConfig(max_epochs=1, batch_size=64, windows_per_epoch=64))
    # 10,000 epochs would take hours: the budget ends it, mid-epoch when it falls there.
    cfg = TrainConfig(
        max_epochs=10_000, patience=10_000, batch_size=64, windows_per_epoch=2048,
        max_val_windows=512,
        time_budget_s=budget,
    )  # fmt: skip
    result = fit(model, data, cfg)
    assert result.stopped_by_budget and not result.stopped_early
    assert 0.9 * budget <= result.seconds <= 1.1 * budget, result.seconds
    # What it trained in that time was validated and kept: the best epoch's weights.
    assert result.best_epoch >= 1 and result.history[-1]["epoch"] >= result.best_epoch
    assert result.windows_seen > 0


def test_a_time_budget_must_be_positive() -> None:
    with pytest.raises(ValueError, match="time_budget_s must be > 0"):
        TrainConfig(time_budget_s=0)


@pytest.mark.parametrize("restore", ["best", "last", "significant"])
def test_restore_ends_with_the_best_or_the_last_epochs_weights(restore: str) -> None:
    spec = WindowSpec(12, 3)
    values = np.random.default_rng(1).normal(0, 1, 300)  # noise: validation peaks by chance
    torch.manual_seed(0)
    model = LSTMForecaster(
        RecurrentForecasterConfig(window=12, horizon=3, hidden_size=32, num_layers=1)
    )
    snapshots: dict[int, dict[str, torch.Tensor]] = {}

    def keep(epoch: int, metrics: dict[str, float]) -> None:
        snapshots[epoch] = {k: v.detach().clone() for k, v in model.state_dict().items()}

    cfg = TrainConfig(
        max_epochs=6, batch_size=16, windows_per_epoch=None, learning_rate=2e-2, patience=6,
        restore=restore,  # type: ignore[arg-type]
    )  # fmt: skip
    result = fit(model, _data(values, spec), cfg, [keep])
    assert len(result.history) == 6 and result.best_epoch < 6  # the case that matters
    best = min(result.history, key=lambda h: h["val_loss"])
    assert result.best_epoch == int(best["epoch"])  # reported either way
    kept = {"best": result.best_epoch, "last": 6}.get(restore, result.kept_epoch)
    assert result.kept_epoch == kept and kept in (result.best_epoch, 6)
    torch.testing.assert_close(model.state_dict(), snapshots[kept], rtol=0, atol=0)
    with pytest.raises(ValueError, match="restore must be best, last or significant"):
        TrainConfig(restore="first")  # type: ignore[arg-type]


def test_an_earlier_epoch_is_restored_only_when_clearly_better() -> None:
    rng = torch.Generator().manual_seed(0)
    last = torch.rand(400, generator=rng, dtype=torch.float64)
    noise = 0.05 * torch.randn(400, generator=rng, dtype=torch.float64)
    assert clearly_better(last - 0.05 + noise, last)  # better on average by 2 %: 20 SEs
    assert not clearly_better(last - 0.001 + noise, last)  # 0.4 SE: noise
    assert not clearly_better(last + 0.05 + noise, last)  # worse
    assert not clearly_better(last[:1] - 1, last[:1])  # one window: no standard error
