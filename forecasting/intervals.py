"""Prediction intervals of a point model from its validation residuals."""

from __future__ import annotations

import numpy as np
import torch

from forecasting.training import WindowData, predict


def residual_quantiles(model: torch.nn.Module, data: WindowData, interval: float) -> np.ndarray:
    """[2, H] lower and upper offsets from the point forecast: empirical quantiles of the
    residuals on (at most 20,000) validation windows, covering ``interval`` per step."""
    b = data.to(torch.device("cpu")).batch(data.val_starts.cpu()[:20_000])
    pred = predict(
        model,
        b.x.numpy(),
        None if b.cov is None else b.cov.numpy(),
        None if b.series is None else b.series.numpy(),
    )[..., 0]
    resid = b.y.numpy() - pred
    alpha = (1.0 - interval) / 2.0
    q = np.quantile(resid, [alpha, 1.0 - alpha], axis=0)
    # Keep the point forecast inside its own interval even when residuals are biased.
    return np.stack([np.minimum(q[0], 0.0), np.maximum(q[1], 0.0)])
