"""Every model (RNN, LSTM, GRU) x every head and option passes the same contract on real data:
fit, backtest beside the baselines, predict with ordered intervals, save/load identically."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from forecasting.forecaster import GlobalForecaster
from forecasting.models import MODELS, RecurrentForecasterConfig
from forecasting.panel import PanelConfig
from forecasting.spec import ForecasterSpec
from forecasting.training import TrainConfig

VARIANTS: dict[str, dict[str, Any]] = {
    "direct": {},
    "seq2seq": {"model": {"head": "seq2seq"}},
    "bidirectional+layer_norm": {"model": {"bidirectional": True, "layer_norm": True}},
    "patches+window_norm+skip": {
        "model": {"patch_len": 6, "normalize": "window", "seasonal_skip": 12}
    },
    "quantiles+calendar+embedding": {
        "spec": {"intervals": "quantile", "calendar": ("hour", "dayofweek"), "embed_series": 3}
    },
}


def _spec(cell: str, variant: dict[str, Any]) -> ForecasterSpec:
    model = RecurrentForecasterConfig(
        cell=cell,  # type: ignore[arg-type]
        window=24,
        horizon=6,
        hidden_size=8,
        num_layers=2,
        **variant.get("model", {}),
    )
    return ForecasterSpec(
        model=model,
        train=TrainConfig(max_epochs=2, windows_per_epoch=512, batch_size=64, patience=5),
        panel=PanelConfig(test_size=48, val_size=200),
        season_length=12,
        **variant.get("spec", {}),
    )


@pytest.fixture(scope="module")
def two_series(glucose: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    """Two real glucose stretches as separate series (the embedding needs more than one)."""
    a = glucose.iloc[-2400:-1200].assign(series_id="cgm-a")
    b = glucose.iloc[-1200:].assign(series_id="cgm-b")
    return pd.concat([a, b], ignore_index=True), {"cgm-a": "5min", "cgm-b": "5min"}


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("cell", list(MODELS))
def test_model_contract(cell: str, variant: str, two_series, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    frame, freqs = two_series
    forecaster = GlobalForecaster(_spec(cell, VARIANTS[variant]))
    assert type(forecaster.model) is MODELS[cell]
    result = forecaster.fit(frame, freqs)
    assert len(result.history) == 2 and np.isfinite(result.best_val_loss)
    assert len(result.grad_norms) == 2 * 512 // 64

    bt = forecaster.backtest()
    counts = bt.per_series.groupby("method")["n_windows"].sum()
    assert set(counts.index) == {"model", "naive", "seasonal_naive"}
    assert counts.nunique() == 1 and bt.n_windows > 0  # the same windows for every method
    assert np.isfinite(bt.summary["model"]["mase"]) and np.isfinite(bt.summary["model"]["pinball"])

    rows, skipped = forecaster.predict(frame)
    assert not skipped and len(rows) == 2 * 6
    assert (rows["yhat_lower"] <= rows["yhat"] + 1e-6).all()
    assert (rows["yhat"] <= rows["yhat_upper"] + 1e-6).all()

    loaded = GlobalForecaster.load(forecaster.save(tmp_path / "m.pt"))
    again, _ = loaded.predict(frame)
    pd.testing.assert_frame_equal(rows, again)
    assert loaded.model_config == forecaster.model_config


def test_embedding_and_quantiles_reach_the_model(two_series) -> None:  # type: ignore[no-untyped-def]
    frame, freqs = two_series
    forecaster = GlobalForecaster(_spec("gru", VARIANTS["quantiles+calendar+embedding"]))
    forecaster.fit(frame, freqs)
    config = forecaster.model_config
    assert config.n_series == 2 and config.embedding_dim == 3
    assert config.quantiles == (0.05, 0.5, 0.95) and config.n_covariates == 4


def test_unknown_calendar_feature_is_refused() -> None:
    with pytest.raises(ValueError, match=r"unknown calendar feature.*choose from"):
        replace(_spec("gru", {}), calendar=("fortnight",))
