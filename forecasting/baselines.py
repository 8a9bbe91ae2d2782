"""Naive and seasonal-naive forecasts, computed on exactly the backtest's windows."""

from __future__ import annotations

import numpy as np
import pandas as pd


def naive(history: np.ndarray, horizon: int) -> np.ndarray:
    """Repeat the last observed value: [H]."""
    return np.full(horizon, history[-1], dtype=np.float64)


def seasonal_naive(history: np.ndarray, horizon: int, season_length: int) -> np.ndarray:
    """Repeat the last observed season: yhat[T+h] = y[T+h-m*ceil(h/m)], h = 1..H."""
    if history.size < season_length:
        raise ValueError(
            f"seasonal naive needs {season_length} points of history, got {history.size}"
        )
    last_season = history[-season_length:]
    return np.resize(last_season, horizon).astype(np.float64)


def _acf(x: np.ndarray, k: int) -> float:
    m = x.mean()
    return float(((x[k:] - m) * (x[:-k] - m)).sum() / ((x - m) ** 2).sum())


def is_seasonal(history: np.ndarray, season_length: int) -> bool:
    """The M4 benchmarks' 90 % autocorrelation test for seasonality at ``season_length``.

    Reproduces the published M4 code, including its first term (the lag-1 autocorrelation
    itself, not its square).
    """
    if season_length < 2 or history.size < 3 * season_length:
        return False
    s = _acf(history, 1) + sum(_acf(history, k) ** 2 for k in range(2, season_length))
    limit = 1.645 * np.sqrt((1 + 2 * s) / history.size)
    return bool(abs(_acf(history, season_length)) > limit)


def seasonal_indices(history: np.ndarray, season_length: int) -> np.ndarray:
    """Multiplicative classical-decomposition indices (mean 1) per season position, as M4."""
    m = season_length
    if not is_seasonal(history, m):
        return np.ones(m)
    ts = pd.Series(history)
    if len(history) % 2 == 0:  # the M4 code tests the series' length, not the period's
        ma = np.roll(ts.rolling(m, center=True).mean().rolling(2, center=True).mean(), -1)
    else:
        ma = ts.rolling(m, center=True).mean().to_numpy()
    ratios = np.concatenate([history / ma, np.full(m - len(history) % m, np.nan)]).reshape(-1, m)
    si = np.nanmean(ratios, axis=0)
    return si / si.mean()


def naive2(history: np.ndarray, horizon: int, season_length: int) -> np.ndarray:
    """The M4 competition's Naive2: naive on the seasonally adjusted series, reseasonalised."""
    si = seasonal_indices(history.astype(np.float64), season_length)
    n = history.size
    adjusted_last = history[-1] / si[(n - 1) % season_length]
    return adjusted_last * si[np.arange(n, n + horizon) % season_length]
