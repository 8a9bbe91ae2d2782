"""Past-only covariates (encoder only, never after the origin), known-future ones refused when
missing over the horizon, declared missing-value policies, and the artifact keeping them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from forecasting.covariates import CovariateLayout, raw_covariates
from forecasting.errors import CovariateError
from forecasting.forecaster import GlobalForecaster
from forecasting.missing import align
from forecasting.models import MODELS, RecurrentForecasterConfig
from forecasting.panel import PanelConfig, build_panel
from forecasting.spec import ForecasterSpec
from forecasting.training import TrainConfig

FREQS = {"s1": "h", "s2": "h"}
N = 160  # points per series
H, W = 4, 12


def _data() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two hourly series driven by a past-only signal one step earlier, plus a known-future
    temperature given over the history and the next H hours."""
    rng = np.random.default_rng(0)
    frames, exog = [], []
    for k, sid in enumerate(FREQS):
        ts = pd.date_range("2024-01-01", periods=N + H, freq="h", tz="UTC")
        driver = rng.normal(size=N + H)
        temp = np.sin(np.arange(N + H) * 2 * np.pi / 24) + k
        value = np.r_[0.0, driver[:-1]] + 0.5 * temp + rng.normal(scale=0.1, size=N + H)
        frames.append(pd.DataFrame({"series_id": sid, "ts": ts[:N], "value": value[:N]}))
        sent = np.where(np.arange(N + H) < N, driver, np.nan)  # past-only: none after origin
        exog.append(pd.DataFrame({"series_id": sid, "ts": ts, "temp": temp, "sent": sent}))
    return pd.concat(frames, ignore_index=True), pd.concat(exog, ignore_index=True)


def _spec(cell: str = "gru", head: str = "direct", **covariates: object) -> ForecasterSpec:
    return ForecasterSpec(
        model=RecurrentForecasterConfig(
            cell=cell, window=W, horizon=H, hidden_size=8, num_layers=1, head=head
        ),  # type: ignore[arg-type]
        train=TrainConfig(max_epochs=2, windows_per_epoch=128, batch_size=32, patience=2),
        panel=PanelConfig(test_size=8, val_size=16),
        season_length=24,
        **covariates,  # type: ignore[arg-type]
    )


BOTH = {"exogenous": ("temp",), "past_covariates": ("sent",)}


@pytest.mark.parametrize("head", ["direct", "seq2seq"])
def test_a_past_only_value_after_the_origin_never_changes_the_forecast(head: str) -> None:
    frame, exog = _data()
    forecaster = GlobalForecaster(_spec(head=head, **BOTH))  # type: ignore[arg-type]
    forecaster.fit(frame, FREQS, exogenous=exog)
    base, _ = forecaster.predict(frame, exog)
    origin = frame["ts"].max()
    after = exog.assign(sent=exog["sent"].where(exog["ts"] <= origin, 1e6))
    spiked, _ = forecaster.predict(frame, after)
    np.testing.assert_array_equal(base["yhat"].to_numpy(), spiked["yhat"].to_numpy())
    pd.testing.assert_frame_equal(base, spiked)
    before = exog.assign(sent=exog["sent"].where(exog["ts"] != origin, 1e6))
    changed, _ = forecaster.predict(frame, before)
    assert not np.array_equal(base["yhat"].to_numpy(), changed["yhat"].to_numpy())


@pytest.mark.parametrize("head", ["direct", "seq2seq"])
@pytest.mark.parametrize("cell", sorted(MODELS))
def test_every_cell_and_head_reads_past_only_inputs_over_the_window_only(
    cell: str, head: str
) -> None:
    torch.manual_seed(0)
    config = RecurrentForecasterConfig(
        cell=cell, window=W, horizon=H, hidden_size=8, num_layers=2, head=head,  # type: ignore[arg-type]
        n_covariates=2, n_past_covariates=1, dropout=0.0,
    )  # fmt: skip
    model = MODELS[cell](config).eval()
    x, cov = torch.randn(3, W), torch.randn(3, W + H, 3)
    out = model(x, cov)
    future = cov.clone()
    future[:, W:, 2] = 1e6  # past-only column over the horizon
    torch.testing.assert_close(model(x, future), out, rtol=0, atol=0)
    window = cov.clone()
    window[:, W - 1, 2] += 5.0  # past-only column at the last window step
    assert not torch.allclose(model(x, window), out)
    known = cov.clone()
    known[:, W:, 0] += 5.0  # a known-future column over the horizon is read
    assert not torch.allclose(model(x, known), out)


@pytest.mark.parametrize(
    ("cell", "head"), [("rnn", "direct"), ("lstm", "seq2seq"), ("gru", "seq2seq")]
)
def test_fit_backtest_forecast_save_and_load_with_past_only_covariates(
    cell: str, head: str, tmp_path: Path
) -> None:
    frame, exog = _data()
    spec = _spec(cell, head, past_covariates=("sent",), covariate_missing=(("sent", "ffill"),))
    forecaster = GlobalForecaster(spec)
    forecaster.fit(frame, FREQS, exogenous=exog)
    assert np.isfinite(forecaster.backtest().summary["model"]["mae"])
    rows, skipped = forecaster.predict(frame, exog)
    assert skipped == {} and len(rows) == 2 * H and np.isfinite(rows["yhat"]).all()
    loaded = GlobalForecaster.load(forecaster.save(tmp_path / "m.pt"))
    assert loaded.spec == spec and loaded.spec.covariates.policies == {"sent": "ffill"}
    assert loaded.model_config.n_past_covariates == 1
    pd.testing.assert_frame_equal(loaded.predict(frame, exog)[0], rows)


def test_covariates_are_scaled_on_the_training_part_only() -> None:
    frame, exog = _data()
    late = exog["ts"] >= frame["ts"].max() - pd.Timedelta(hours=20)  # inside val/test
    spiked = exog.assign(sent=exog["sent"].where(~late, 1e6))
    a, b = GlobalForecaster(_spec(**BOTH)), GlobalForecaster(_spec(**BOTH))  # type: ignore[arg-type]
    a.fit(frame, FREQS, exogenous=exog)
    b.fit(frame, FREQS, exogenous=spiked)
    assert a.exog_scaler is not None and b.exog_scaler is not None
    np.testing.assert_array_equal(a.exog_scaler.mean, b.exog_scaler.mean)
    np.testing.assert_array_equal(a.exog_scaler.scale, b.exog_scaler.scale)


def test_a_known_future_covariate_missing_over_the_horizon_is_refused() -> None:
    frame, exog = _data()
    forecaster = GlobalForecaster(_spec(exogenous=("temp",)))
    forecaster.fit(frame, FREQS, exogenous=exog)
    short = exog[~((exog["series_id"] == "s2") & (exog["ts"] > frame["ts"].max()))]
    with pytest.raises(CovariateError, match=r"series 's2': known-future covariate 'temp' is "
                       r"missing over the forecast horizon from 2024-01-07 16:00"):  # fmt: skip
        forecaster.predict(frame, short)
    # ffill fills gaps in the history but never invents the horizon.
    ffill = GlobalForecaster(
        replace(_spec(exogenous=("temp",)), covariate_missing=(("temp", "ffill"),))
    )
    ffill.fit(frame, FREQS, exogenous=exog)
    with pytest.raises(CovariateError, match=r"'s2'.*'temp'.*forecast horizon"):
        ffill.predict(frame, short)


def test_a_missing_value_is_refused_under_error_and_filled_as_declared() -> None:
    frame, exog = _data()
    hole = pd.Timestamp("2024-01-02 05:00", tz="UTC")
    at_hole = (exog["series_id"] == "s1") & (exog["ts"] == hole)
    holed = exog.assign(sent=exog["sent"].mask(at_hole))
    with pytest.raises(
        CovariateError,
        match=r"series 's1': covariate 'sent' is missing at 2024-01-02 05:00:00\+00:00 "
        r"\(missing policy 'error'\); supply it, or declare missing: ffill or zero",
    ):
        GlobalForecaster(_spec(**BOTH)).fit(frame, FREQS, exogenous=holed)  # type: ignore[arg-type]
    panel = build_panel(frame, FREQS, PanelConfig())
    at = int((hole - panel.starts[0]) / pd.Timedelta(hours=1))
    for policy, expected in [("ffill", exog["sent"].iloc[at - 1]), ("zero", 0.0)]:
        layout = CovariateLayout(past=("sent",), missing=(("sent", policy),))
        raw = raw_covariates(panel, layout, holed)
        assert raw[at, 0] == expected and not np.isnan(raw[:N, 0]).any()
        fitted = GlobalForecaster(replace(_spec(**BOTH), covariate_missing=(("sent", policy),)))  # type: ignore[arg-type]
        fitted.fit(frame, FREQS, exogenous=holed)
        assert len(fitted.predict(frame, holed)[0]) == 2 * H


def test_missing_policies_in_detail() -> None:
    grid = pd.date_range("2024-01-01", periods=6, freq="h", tz="UTC")
    daily = pd.Series([1.0, 3.0], index=grid[[1, 3]])
    nan = np.nan
    ffill_known = align(daily, grid, history=4, policy="ffill", kind="known_future")
    np.testing.assert_array_equal(ffill_known, [nan, 1, 1, 3, nan, nan])  # not past the last
    ffill_past = align(daily, grid, history=4, policy="ffill", kind="past_only")
    np.testing.assert_array_equal(ffill_past, [nan, 1, 1, 3, 3, 3])
    zero_known = align(daily, grid, history=4, policy="zero", kind="known_future")
    np.testing.assert_array_equal(zero_known, [0, 1, 0, 3, nan, nan])  # the horizon: refused
    np.testing.assert_array_equal(
        align(daily, grid, history=4, policy="error", kind="past_only"), [nan, 1, nan, 3, nan, nan]
    )
    with pytest.raises(ValueError, match="choose from"):
        _spec(past_covariates=("sent",), covariate_missing=(("sent", "interpolate"),))
    with pytest.raises(ValueError, match="both known-future"):
        _spec(exogenous=("sent",), past_covariates=("sent",))
    with pytest.raises(ValueError, match="not a covariate of this model"):
        _spec(covariate_missing=(("sent", "zero"),))


def test_resampling_rules_put_finer_values_on_the_grid_as_declared(tmp_path: Path) -> None:
    grid = pd.date_range("2024-01-01", periods=3, freq="h", tz="UTC")
    # 15-minute rainfall: four readings in the first hour, two in the second, none in the last
    at = grid[0] + pd.to_timedelta([0, 15, 30, 45, 60, 90], unit="min")
    rain = pd.Series([1.0, 2.0, 3.0, 4.0, 5.0, 7.0], index=at)
    expected = {
        "mean": [2.5, 6.0],
        "sum": [10.0, 12.0],
        "first": [1.0, 5.0],
        "last": [4.0, 7.0],
        "min": [1.0, 5.0],
        "max": [4.0, 7.0],
    }
    for rule, values in expected.items():
        got = align(rain, grid, history=3, policy="error", kind="past_only", rule=rule)
        np.testing.assert_array_equal(got, [*values, np.nan], err_msg=rule)
    with pytest.raises(ValueError, match="choose from"):
        align(rain, grid, history=3, policy="error", kind="past_only", rule="median")
    with pytest.raises(ValueError, match="covariate_resample 'median' of covariate 'sent'"):
        _spec(past_covariates=("sent",), covariate_resample=(("sent", "median"),))
    # The rule reaches the matrix the model reads, and a saved model keeps it.
    frame, exog = _data()
    fine = exog.assign(ts=exog["ts"] + pd.Timedelta(minutes=30))
    quarter = pd.concat([exog, fine], ignore_index=True)
    spec = _spec(past_covariates=("sent",), covariate_resample=(("sent", "sum"),))
    panel = build_panel(frame, FREQS, spec.panel)
    summed = raw_covariates(panel, spec.covariates, quarter)
    averaged = raw_covariates(panel, _spec(past_covariates=("sent",)).covariates, quarter)
    finite = ~np.isnan(averaged[:, 0])
    np.testing.assert_allclose(summed[finite, 0], 2 * averaged[finite, 0])
    fitted = GlobalForecaster(spec)
    fitted.fit(frame, FREQS, exogenous=quarter)
    loaded = GlobalForecaster.load(fitted.save(tmp_path / "m.pt"))
    assert loaded.spec.covariates.rules == {"sent": "sum"}
