"""Naive and seasonal-naive forecasts, computed on exactly the backtest's windows."""

from __future__ import annotations

import numpy as np


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
