"""Rolling-origin backtest over the held-out end of each series, beside the baselines."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from forecasting import metrics
from forecasting.baselines import naive, seasonal_naive
from forecasting.panel import Panel, Split

# Predicts raw-unit forecasts [K, H] and interval bounds for K windows [K, W] of series i whose
# forecasts start at the positions ``origins`` [K] of that series.
PredictFn = Callable[[int, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]

METHODS = ("model", "naive", "seasonal_naive")


@dataclass
class BacktestResult:
    """Per-series metrics for the model and both baselines, and their means across series."""

    per_series: pd.DataFrame  # series_id, method, n_windows, mae, rmse, smape, mase, coverage,
    # pinball
    summary: dict[str, dict[str, float]] = field(default_factory=dict)  # method -> metric -> value
    examples: list[dict[str, object]] = field(default_factory=list)  # for plots
    n_windows: int = 0
    skipped_windows: int = 0
    # step (1..horizon), model_mae, naive_mae, n: the absolute errors of every window pooled
    # by horizon step; None where not computed (pooled results of :func:`combine`).
    per_step: pd.DataFrame | None = None


def backtest(
    panel: Panel,
    split: Split,
    window: int,
    horizon: int,
    season_length: int,
    predict_fn: PredictFn,
    interval: float = 0.9,
    step: int | None = None,
    n_windows: int | None = None,
) -> BacktestResult:
    """Forecast from rolling origins ``test_start, test_start + step, ...`` of every series.

    Args:
        interval: nominal coverage of the model's intervals (for the pinball loss).
        step: distance between origins (default: the horizon, non-overlapping windows).
        n_windows: keep only the last ``n_windows`` origins of each series (default: all).

    Each origin's input is the ``window`` points before it; windows with a missing input or
    target are skipped and counted. Baselines use the full history before the same origin.
    """
    if (step is not None and step < 1) or (n_windows is not None and n_windows < 1):
        raise ValueError(f"step and n_windows must be >= 1, got {step} and {n_windows}")
    alpha = (1.0 - interval) / 2.0
    rows: list[dict[str, object]] = []
    examples: list[dict[str, object]] = []
    total = skipped = 0
    step_abs = {"model": np.zeros(horizon), "naive": np.zeros(horizon)}
    for i, sid in enumerate(panel.series_ids):
        y_all = panel.series_values(i).astype(np.float64)
        origins = np.arange(int(split.test_start[i]), len(y_all) - horizon + 1, step or horizon)
        if n_windows is not None:
            origins = origins[-n_windows:]
        # The same windows for every method: model input, seasonal-naive source and targets
        # must all be observed.
        lookback = max(window, season_length)
        keep = [
            p
            for p in origins
            if p >= lookback and np.isfinite(y_all[p - lookback : p + horizon]).all()
        ]
        skipped += len(origins) - len(keep)
        if not keep:
            continue
        total += len(keep)
        inputs = np.stack([y_all[p - window : p] for p in keep])  # [K, W] raw units
        actual = np.stack([y_all[p : p + horizon] for p in keep])  # [K, H]
        pred, lower, upper = predict_fn(i, inputs, np.asarray(keep, dtype=np.int64))
        hist = [y_all[:p] for p in keep]
        base = {
            "naive": np.stack([naive(h, horizon) for h in hist]),
            "seasonal_naive": np.stack([seasonal_naive(h, horizon, season_length) for h in hist]),
        }
        scale = metrics.mase_scale(y_all[: int(split.val_start[i])], season_length)
        step_abs["model"] += np.abs(actual - pred).sum(axis=0)
        step_abs["naive"] += np.abs(actual - base["naive"]).sum(axis=0)
        for method, yhat in (("model", pred), *base.items()):
            row: dict[str, object] = {"series_id": sid, "method": method, "n_windows": len(keep)}
            row.update(metrics.point_metrics(actual, yhat, scale))
            model = method == "model"
            row["coverage"] = metrics.coverage(actual, lower, upper) if model else float("nan")
            row["pinball"] = (
                metrics.interval_pinball(actual, yhat, lower, upper, alpha) / scale
                if model and np.isfinite(scale) and scale > 0
                else float("nan")
            )
            rows.append(row)
        p = keep[-1]
        # Arrays, not lists: callers (Prefect, logging) walk plain lists element by element.
        examples.append(
            {
                "series_id": sid,
                "history": y_all[max(0, p - 3 * window) : p].copy(),
                "actual": actual[-1].copy(),
                "model": pred[-1].copy(),
                "lower": lower[-1].copy(),
                "upper": upper[-1].copy(),
                "seasonal_naive": base["seasonal_naive"][-1].copy(),
            }
        )
    per_series = pd.DataFrame(
        rows,
        columns=[
            "series_id",
            "method",
            "n_windows",
            "mae",
            "rmse",
            "smape",
            "mase",
            "coverage",
            "pinball",
        ],
    )
    summary: dict[str, dict[str, float]] = {}
    for method in METHODS:
        part = per_series[per_series["method"] == method]
        summary[method] = {
            m: float(part[m].mean())
            for m in ("mae", "rmse", "smape", "mase", "coverage", "pinball")
        }
    per_step = pd.DataFrame(
        {
            "step": np.arange(1, horizon + 1),
            "model_mae": step_abs["model"] / max(total, 1),
            "naive_mae": step_abs["naive"] / max(total, 1),
            "n": total,
        }
    )
    return BacktestResult(
        per_series, summary, examples, total, skipped, per_step if total else per_step.head(0)
    )


def combine(results: list[BacktestResult]) -> BacktestResult:
    """Pool backtests of different origins: per series and method, a window-weighted mean."""
    frames = [r.per_series for r in results if len(r.per_series)]
    if not frames:
        return BacktestResult(results[0].per_series if results else pd.DataFrame())
    rows = pd.concat(frames, ignore_index=True)
    value_cols = ["mae", "rmse", "smape", "mase", "coverage", "pinball"]
    weighted = rows[value_cols].mul(rows["n_windows"], axis=0)
    weighted[["series_id", "method", "n_windows"]] = rows[["series_id", "method", "n_windows"]]
    sums = weighted.groupby(["series_id", "method"], sort=False).sum(min_count=1).reset_index()
    for col in value_cols:
        sums[col] = sums[col] / sums["n_windows"]
    per_series = sums[["series_id", "method", "n_windows", *value_cols]]
    summary = {
        method: {m: float(per_series[per_series["method"] == method][m].mean()) for m in value_cols}
        for method in METHODS
    }
    return BacktestResult(
        per_series,
        summary,
        results[-1].examples,
        sum(r.n_windows for r in results),
        sum(r.skipped_windows for r in results),
    )
