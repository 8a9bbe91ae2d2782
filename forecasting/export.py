"""One-tensor view of a forecaster for serving and ``torch.export``.

A model with covariates or a series embedding takes several inputs; exported models (MLflow's
``pt2`` flavour) are simplest to call with one. ``PackedForecaster`` takes one float tensor
[B, W + (W + H) * C (+ 1)]: the scaled window, then the flattened covariates, then the series
index, and returns [B, H, Q].
"""

from __future__ import annotations

import torch
from torch import nn

from forecasting.models import RecurrentForecaster


class PackedForecaster(nn.Module):
    """Unpacks one input row into window, covariates and series index."""

    def __init__(self, model: RecurrentForecaster) -> None:
        super().__init__()
        self.model = model
        c = model.config
        self.window, self.span, self.n_cov = c.window, c.window + c.horizon, c.n_covariates
        self.width = c.window + self.span * c.n_covariates + (1 if c.n_series else 0)

    def forward(self, packed: torch.Tensor) -> torch.Tensor:
        """[B, width] -> [B, H, Q]."""
        x = packed[:, : self.window]  # [B, W]
        end = self.window + self.span * self.n_cov
        cov = (
            packed[:, self.window : end].reshape(-1, self.span, self.n_cov) if self.n_cov else None
        )
        series = packed[:, end].long() if self.model.config.n_series else None
        return self.model(x, cov, series)
