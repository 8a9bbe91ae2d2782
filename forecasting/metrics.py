"""Point and interval accuracy metrics over [K, H] arrays of forecasts."""

from __future__ import annotations

import numpy as np


def mae(y: np.ndarray, yhat: np.ndarray) -> float:
    return float(np.mean(np.abs(y - yhat)))


def rmse(y: np.ndarray, yhat: np.ndarray) -> float:
    return float(np.sqrt(np.mean((y - yhat) ** 2)))


def smape(y: np.ndarray, yhat: np.ndarray) -> float:
    """Symmetric MAPE in percent (0..200), as in the M4 competition; 0/0 counts as 0."""
    denom = np.abs(y) + np.abs(yhat)
    ratio = np.divide(2.0 * np.abs(y - yhat), denom, out=np.zeros_like(denom), where=denom > 0)
    return float(100.0 * np.mean(ratio))


def mase_scale(insample: np.ndarray, season_length: int) -> float:
    """Mean absolute seasonal difference of the in-sample series (NaN ignored)."""
    if insample.size <= season_length:
        return float("nan")
    diffs = np.abs(insample[season_length:] - insample[:-season_length])
    diffs = diffs[np.isfinite(diffs)]
    return float(diffs.mean()) if diffs.size else float("nan")


def mase(y: np.ndarray, yhat: np.ndarray, scale: float) -> float:
    """MAE divided by the in-sample seasonal-naive MAE ``scale``."""
    if not np.isfinite(scale) or scale <= 0:
        return float("nan")
    return mae(y, yhat) / scale


def coverage(y: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    """Share of actuals inside [lower, upper]."""
    return float(np.mean((y >= lower) & (y <= upper)))


def pinball(y: np.ndarray, q_forecast: np.ndarray, level: float) -> float:
    """Mean quantile (pinball) loss of the ``level`` quantile forecast."""
    diff = y - q_forecast
    return float(np.mean(np.maximum(level * diff, (level - 1.0) * diff)))


def interval_pinball(
    y: np.ndarray, median: np.ndarray, lower: np.ndarray, upper: np.ndarray, alpha: float
) -> float:
    """Mean pinball loss over the lower (alpha), median and upper (1 - alpha) forecasts."""
    return (pinball(y, lower, alpha) + pinball(y, median, 0.5) + pinball(y, upper, 1 - alpha)) / 3


def point_metrics(y: np.ndarray, yhat: np.ndarray, scale: float) -> dict[str, float]:
    """MAE, RMSE, sMAPE and MASE together."""
    return {
        "mae": mae(y, yhat),
        "rmse": rmse(y, yhat),
        "smape": smape(y, yhat),
        "mase": mase(y, yhat, scale),
    }
