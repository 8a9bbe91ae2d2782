"""GlobalForecaster.predict forecasts every series in one batched model call: the rows are the
same (within 1e-6) as forecasting each series alone, one model call per series (what predict
did before), with the same skipped series and reasons."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecasting.forecaster import GlobalForecaster
from forecasting.models import RecurrentForecasterConfig
from forecasting.panel import PanelConfig
from forecasting.spec import ForecasterSpec
from forecasting.training import TrainConfig


def _frame(n_series: int = 6, length: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    ts = pd.date_range("2024-01-01", periods=length, freq="h", tz="UTC")
    parts = []
    for k in range(n_series):
        t = np.arange(length)
        y = 10 + k + 3 * np.sin(2 * np.pi * t / 24 + k) + rng.normal(0, 0.3, length)
        parts.append(pd.DataFrame({"series_id": f"s{k}", "ts": ts, "value": y}))
    frame = pd.concat(parts, ignore_index=True)
    # s5's last window has a gap longer than max_fill: it must be skipped, the others not.
    gap = (frame["series_id"] == "s5") & frame["ts"].isin(ts[-10:-4])
    return frame[~gap].reset_index(drop=True)


def _spec(**options: object) -> ForecasterSpec:
    model = {k: v for k, v in options.items() if k != "calendar"}
    return ForecasterSpec(
        model=RecurrentForecasterConfig(window=24, horizon=6, hidden_size=8, num_layers=1),
        train=TrainConfig(max_epochs=1, windows_per_epoch=256, batch_size=64),
        panel=PanelConfig(test_size=24, val_size=48),
        season_length=24,
        calendar=tuple(options.get("calendar", ())),  # type: ignore[arg-type]
        **model,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"intervals": "quantile"},
        {"calendar": ("hour",), "embed_series": 4},
    ],
    ids=["residual", "quantile", "calendar+embedding"],
)
def test_one_batched_call_equals_one_call_per_series(options: dict[str, object]) -> None:
    frame = _frame()
    fitted = GlobalForecaster(_spec(**options))
    fitted.fit(frame, {f"s{k}": "h" for k in range(6)})
    rows, skipped = fitted.predict(frame)
    alone = [fitted.predict(g) for _, g in frame.groupby("series_id", sort=True)]
    expected = pd.concat([r for r, _ in alone if not r.empty], ignore_index=True)
    assert set(skipped) == {"s5"} and "gaps longer than max_fill" in skipped["s5"]
    assert [s for _, s in alone if s] == [skipped]
    assert rows["series_id"].unique().tolist() == ["s0", "s1", "s2", "s3", "s4"]
    assert (
        rows.groupby("series_id")["step"].apply(list).map(lambda s: s == [1, 2, 3, 4, 5, 6]).all()
    )
    pd.testing.assert_frame_equal(rows, expected, check_exact=False, rtol=1e-6, atol=1e-6)
    assert (rows["yhat_lower"] <= rows["yhat"]).all() and (rows["yhat"] <= rows["yhat_upper"]).all()


def test_unknown_series_are_skipped_and_the_rest_forecast() -> None:
    frame = _frame()
    fitted = GlobalForecaster(_spec())
    fitted.fit(frame[frame["series_id"] != "s4"], {f"s{k}": "h" for k in range(6) if k != 4})
    rows, skipped = fitted.predict(frame)
    assert sorted(skipped) == ["s4", "s5"]
    assert "not in the training data" in skipped["s4"]
    assert rows["series_id"].unique().tolist() == ["s0", "s1", "s2", "s3"]
    only_unknown, why = fitted.predict(frame[frame["series_id"] == "s4"])
    assert only_unknown.empty and list(only_unknown.columns) == list(rows.columns) and "s4" in why
