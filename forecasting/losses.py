"""Training losses over [B, H, Q] outputs: point losses and the pinball (quantile) loss."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch.nn import functional as F


def pinball(pred: torch.Tensor, y: torch.Tensor, quantiles: Sequence[float]) -> torch.Tensor:
    """Quantile loss per element: [B, H, Q] forecasts, [B, H] targets -> [B, H, Q]."""
    q = torch.as_tensor(quantiles, dtype=pred.dtype, device=pred.device)  # [Q]
    diff = y.unsqueeze(-1) - pred  # [B, H, Q]: positive when the forecast is too low
    return torch.maximum(q * diff, (q - 1.0) * diff)


def forecast_loss(
    pred: torch.Tensor,
    y: torch.Tensor,
    x: torch.Tensor,
    point_loss: str,
    scale: str,
    quantiles: Sequence[float] = (),
) -> torch.Tensor:
    """Mean loss of [B, H, Q] forecasts against [B, H] targets.

    Args:
        x: [B, W] the inputs, for ``scale="window"`` (divide by each input's std).
        point_loss: ``mae``, ``mse`` or ``huber`` (ignored when ``quantiles`` is given).
    """
    return step_losses(pred, y, x, point_loss, scale, quantiles).mean()


def step_losses(
    pred: torch.Tensor,
    y: torch.Tensor,
    x: torch.Tensor,
    point_loss: str,
    scale: str,
    quantiles: Sequence[float] = (),
) -> torch.Tensor:
    """:func:`forecast_loss` before the mean: [B, H], one loss per window and step."""
    if quantiles:
        per = pinball(pred, y, quantiles).mean(-1)  # [B, H]
    elif point_loss == "mse":
        per = F.mse_loss(pred[..., 0], y, reduction="none")
    elif point_loss == "huber":
        per = F.huber_loss(pred[..., 0], y, reduction="none")
    else:
        per = F.l1_loss(pred[..., 0], y, reduction="none")
    if scale == "window":
        per = per / (x.std(dim=1, keepdim=True) + 1e-3)
    return per


def clearly_better(best: torch.Tensor, last: torch.Tensor) -> bool:
    """Whether the best epoch's per-window validation losses beat the last epoch's by more
    than two standard errors of their paired difference (``TrainConfig.restore``)."""
    d = last - best
    return len(d) > 1 and float(d.mean()) > 2 * float(d.std()) / math.sqrt(len(d))
