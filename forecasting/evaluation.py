"""Rolling-origin evaluation with or without refitting the model at every origin."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from forecasting.backtest import BacktestResult, combine
from forecasting.forecaster import GlobalForecaster
from forecasting.spec import ForecasterSpec


def _truncate(frame: pd.DataFrame, freqs: dict[str, str], steps: int) -> pd.DataFrame:
    """Drop the last ``steps`` grid steps of every series."""
    if steps == 0:
        return frame
    last = frame.groupby("series_id")["ts"].max()
    cutoff = {
        sid: ts - steps * pd.tseries.frequencies.to_offset(freqs[str(sid)])
        for sid, ts in last.items()
    }
    return frame[frame["ts"] <= frame["series_id"].map(cutoff)]


def rolling_origin(
    spec: ForecasterSpec,
    frame: pd.DataFrame,
    freqs: dict[str, str],
    n_windows: int,
    step: int | None = None,
    refit: bool = False,
    exogenous: pd.DataFrame | None = None,
) -> BacktestResult:
    """Backtest from the last ``n_windows`` origins of every series, ``step`` apart.

    The last origin's horizon ends at each series' last point. Without ``refit`` one model,
    trained on the data before the first origin, forecasts from every origin; with ``refit``
    a new model is trained on everything before each origin (n_windows trainings), which is
    how a scheduled retrain would have performed. Naive and seasonal naive are scored on the
    same windows either way.
    """
    horizon = spec.model.horizon
    step = step or horizon
    if n_windows < 1 or step < 1:
        raise ValueError(f"n_windows and step must be >= 1, got {n_windows} and {step}")
    if not refit:
        test_size = (n_windows - 1) * step + horizon
        forecaster = GlobalForecaster(replace(spec, panel=replace(spec.panel, test_size=test_size)))
        forecaster.fit(frame, freqs, exogenous=exogenous)
        return forecaster.backtest(step=step, n_windows=n_windows)
    results = []
    for k in range(n_windows):
        removed = (n_windows - 1 - k) * step
        forecaster = GlobalForecaster(replace(spec, panel=replace(spec.panel, test_size=horizon)))
        forecaster.fit(_truncate(frame, freqs, removed), freqs, exogenous=exogenous)
        results.append(forecaster.backtest(n_windows=1))
    return combine(results)
