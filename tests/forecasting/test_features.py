"""Behaviour of the engine's options: teacher forcing, pinball loss, one-cycle LR, calendar and
exogenous covariates, rolling-origin refits and refusing bad configurations up front."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from forecasting.covariates import calendar_features
from forecasting.errors import CovariateError
from forecasting.evaluation import rolling_origin
from forecasting.forecaster import GlobalForecaster
from forecasting.losses import pinball
from forecasting.models import GRUForecaster, LSTMForecaster, RecurrentForecasterConfig
from forecasting.panel import PanelConfig, PanelError
from forecasting.spec import ForecasterSpec
from forecasting.training import TrainConfig

FREQS = {"cgm-glucose": "5min"}


def _spec(**model: object) -> ForecasterSpec:
    return ForecasterSpec(
        model=RecurrentForecasterConfig(
            window=24, horizon=6, hidden_size=16, num_layers=1, **model
        ),  # type: ignore[arg-type]
        train=TrainConfig(max_epochs=3, windows_per_epoch=1024, batch_size=64, patience=5),
        panel=PanelConfig(test_size=60, val_size=200),
        season_length=12,
    )


def test_seq2seq_uses_the_truth_while_training_and_its_own_output_when_predicting() -> None:
    torch.manual_seed(0)
    model = LSTMForecaster(RecurrentForecasterConfig(window=8, horizon=4, head="seq2seq"))
    x, y = torch.randn(5, 8), torch.randn(5, 4)
    model.train()
    model.dropout.p = 0.0
    forced_a, forced_b = model(x, y=y), model(x, y=y + 10.0)
    # Step 1 reads only the last input; later steps read the (different) teacher values.
    torch.testing.assert_close(forced_a[:, 0], forced_b[:, 0])
    assert not torch.allclose(forced_a[:, 1:], forced_b[:, 1:])
    model.eval()
    torch.testing.assert_close(model(x, y=y), model(x))  # targets are ignored when predicting


def test_pinball_loss_matches_its_definition() -> None:
    pred = torch.tensor([[[1.0, 2.0, 3.0]]])  # [B=1, H=1, Q=3]
    y = torch.tensor([[2.5]])
    q = (0.1, 0.5, 0.9)
    expected = [0.1 * 1.5, 0.5 * 0.5, (0.9 - 1.0) * -0.5]
    torch.testing.assert_close(pinball(pred, y, q)[0, 0], torch.tensor(expected))


def test_one_cycle_warms_up_then_anneals(glucose: pd.DataFrame) -> None:
    spec = _spec()
    train = replace(
        spec.train, lr_schedule="onecycle", max_epochs=10, windows_per_epoch=256, patience=10
    )
    result = GlobalForecaster(replace(spec, train=train)).fit(glucose.iloc[-3000:], FREQS)
    lrs = [h["lr"] for h in result.history]  # at the end of each epoch
    assert lrs[0] < lrs[1] < lrs[2] and lrs[-1] < max(lrs) / 10  # up, then far down
    assert max(lrs) <= spec.train.learning_rate * 1.0001


def test_calendar_features_are_the_phase_of_the_utc_clock() -> None:
    index = pd.DatetimeIndex(["2024-01-01 06:00", "2024-01-01 18:00"], tz="UTC")
    feats = calendar_features(index, ["hour"])
    np.testing.assert_allclose(feats, [[1.0, 0.0], [-1.0, 0.0]], atol=1e-12)


def _announced(frame: pd.DataFrame) -> pd.DataFrame:
    """An exogenous variable known in advance: here the reading itself, as if announced."""
    return frame[["series_id", "ts"]].assign(announced=frame["value"].to_numpy())


def test_a_known_future_exogenous_series_is_used(glucose: pd.DataFrame) -> None:
    frame = glucose.iloc[-4000:].reset_index(drop=True)
    exog = _announced(frame)
    plain = GlobalForecaster(_spec(normalize="none"))
    plain.fit(frame, FREQS)
    informed = GlobalForecaster(
        replace(
            _spec(normalize="none"),
            exogenous=("announced",),
            # the readings have gaps the panel interpolates; the announcement carries over them
            covariate_missing=(("announced", "ffill"),),
        )
    )
    informed.fit(frame, FREQS, exogenous=exog)
    mae_plain = plain.backtest().summary["model"]["mae"]
    mae_informed = informed.backtest().summary["model"]["mae"]
    assert mae_informed < 0.5 * mae_plain, (mae_informed, mae_plain)
    # Forecasting needs the exogenous values over the horizon too: without them, refuse.
    with pytest.raises(CovariateError, match=r"'cgm-glucose'.*'announced'.*forecast horizon"):
        informed.predict(frame, exogenous=exog)
    with pytest.raises(PanelError, match="needs exogenous columns"):
        informed.predict(frame)


def test_rolling_origin_with_and_without_refit_scores_the_same_windows(
    glucose: pd.DataFrame,
) -> None:
    frame = glucose.iloc[-3000:]
    spec = _spec()
    spec = replace(spec, train=replace(spec.train, max_epochs=1))
    once = rolling_origin(spec, frame, FREQS, n_windows=3, step=12, refit=False)
    refit = rolling_origin(spec, frame, FREQS, n_windows=3, step=12, refit=True)
    for bt in (once, refit):
        assert bt.n_windows == 3
        assert set(bt.per_series["method"]) == {"model", "naive", "seasonal_naive"}
    # Baselines see exactly the same windows either way; the model differs (refit per origin).
    for method in ("naive", "seasonal_naive"):
        assert once.summary[method]["mae"] == pytest.approx(refit.summary[method]["mae"])
    assert once.summary["model"]["mae"] != refit.summary["model"]["mae"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"cell": "transformer"}, "cell must be one of"),
        ({"window": 25, "patch_len": 6}, "multiple of patch_len"),
        ({"seasonal_skip": 3}, "seasonal_skip must lie between horizon"),
    ],
)
def test_bad_model_configuration_is_refused_with_what_to_change(
    change: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        RecurrentForecasterConfig(**{"window": 24, "horizon": 6, **change})  # type: ignore[arg-type]


def test_series_too_short_for_the_window_is_refused_up_front(glucose: pd.DataFrame) -> None:
    spec = replace(_spec(), model=replace(_spec().model, window=2000))
    with pytest.raises(PanelError, match=r"every series is too short.*lower window"):
        GlobalForecaster(spec).fit(glucose.iloc[-1000:], FREQS)
    with pytest.raises(ValueError, match=r"val_size .* at least one horizon"):
        replace(_spec(), panel=PanelConfig(test_size=60, val_size=3))


def test_gru_and_lstm_share_the_contract_but_not_their_gates() -> None:
    config = RecurrentForecasterConfig(window=8, horizon=2, hidden_size=4, num_layers=1)
    lstm, gru = LSTMForecaster(config), GRUForecaster(config)
    assert lstm.layers[0].weight_hh_l0.shape[0] == 4 * 4
    assert gru.layers[0].weight_hh_l0.shape[0] == 3 * 4
    # Orthogonal recurrent blocks: each gate's square block has orthonormal rows.
    for block in lstm.layers[0].weight_hh_l0.detach().chunk(4):
        torch.testing.assert_close(block @ block.T, torch.eye(4), atol=1e-5, rtol=0)


def test_the_grid_keeps_the_sensors_phase_so_forecasts_meet_their_actuals(
    glucose: pd.DataFrame,
) -> None:
    """CGM readings sit at :02/:07 etc.; forecast targets must land on those times too."""
    frame = glucose.iloc[-3000:]
    forecaster = GlobalForecaster(_spec())
    forecaster.fit(frame.iloc[:-12], FREQS)
    rows, _ = forecaster.predict(frame.iloc[:-12])
    later = set(frame["ts"].iloc[-12:])
    assert set(rows["ts"]) <= later, (sorted(rows["ts"])[:3], sorted(later)[:3])
