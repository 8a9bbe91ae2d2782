"""The pyfunc model of a forecaster with covariates: the request carries them on the history
and horizon rows (past-only ones may be empty there); a missing known-future value is a 400."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from flows.tracking.pyfunc_forecaster import forecast_request
from flows.tracking.registry import forecaster_example, forecaster_signature
from forecasting.forecaster import ForecasterSpec, GlobalForecaster
from forecasting.models import RecurrentForecasterConfig
from forecasting.panel import PanelConfig
from forecasting.training import TrainConfig

N, H = 120, 3


@pytest.fixture(scope="module")
def model_and_request() -> tuple[GlobalForecaster, pd.DataFrame]:
    rng = np.random.default_rng(0)
    ts = pd.date_range("2024-01-01", periods=N + H, freq="h", tz="UTC")
    temp, mood = np.sin(np.arange(N + H) / 5), rng.normal(size=N + H)
    value = np.r_[temp[:N] + rng.normal(scale=0.1, size=N), [np.nan] * H]
    request = pd.DataFrame(
        {"series_id": "s", "ts": [t.isoformat() for t in ts], "value": value, "temp": temp,
         "mood": np.r_[mood[:N], [np.nan] * H]}
    )  # fmt: skip
    spec = ForecasterSpec(
        model=RecurrentForecasterConfig(cell="lstm", window=12, horizon=H, hidden_size=8),
        train=TrainConfig(max_epochs=1, windows_per_epoch=64, batch_size=32),
        panel=PanelConfig(test_size=6, val_size=12),
        season_length=24,
        exogenous=("temp",),
        past_covariates=("mood",),
    )
    model = GlobalForecaster(spec)
    history = request.iloc[:N].assign(ts=ts[:N])
    model.fit(history[["series_id", "ts", "value"]], {"s": "h"}, exogenous=history)
    return model, request


def test_a_request_with_covariates_is_forecast(
    model_and_request: tuple[GlobalForecaster, pd.DataFrame],
) -> None:
    model, request = model_and_request
    out = forecast_request(model, request)
    assert len(out) == H and np.isfinite(out["yhat"]).all()
    inputs = {c.name: c.required for c in forecaster_signature(model).inputs.inputs}
    assert inputs == {"series_id": True, "ts": True, "value": False, "temp": True, "mood": False}


def test_a_known_future_value_missing_over_the_horizon_is_refused_with_its_name(
    model_and_request: tuple[GlobalForecaster, pd.DataFrame],
) -> None:
    model, request = model_and_request
    short = request.assign(temp=request["temp"].where(request["value"].notna()))
    with pytest.raises(MlflowException, match="series 's': known-future covariate 'temp'"):
        forecast_request(model, short)
    with pytest.raises(MlflowException, match=r"lacks columns \['mood'\]"):
        forecast_request(model, request.drop(columns="mood"))


def test_the_input_example_carries_the_covariates_over_window_and_horizon(
    model_and_request: tuple[GlobalForecaster, pd.DataFrame], tmp_path: Path
) -> None:
    model, request = model_and_request
    assert forecaster_example(model) is None  # fitted without temp over the horizon
    stored = request.assign(ts=pd.to_datetime(request["ts"], utc=True))  # as the table gives it
    example = forecaster_example(model, exogenous=stored)
    assert example is not None and len(example) == 12 + H
    assert list(example.columns) == ["series_id", "ts", "value", "temp", "mood"]
    assert example["value"].iloc[-H:].isna().all() and example["value"].iloc[:-H].notna().all()
    assert example["temp"].notna().all() and example["mood"].iloc[-H:].isna().all()
    assert example["ts"].tolist() == request["ts"].iloc[N - 12 :].tolist()
    pd.testing.assert_frame_equal(
        forecast_request(model, example), forecast_request(model, request)
    )
    # A model not fitted in this process (torchrun's) builds it from the training frame.
    loaded = GlobalForecaster.load(model.save(tmp_path / "m.pt"))
    history = stored.iloc[:N][["series_id", "ts", "value"]]
    pd.testing.assert_frame_equal(forecaster_example(loaded, history, stored), example)
