"""Recurrent decoder for the sequence-to-sequence head."""

from __future__ import annotations

import torch
from torch import nn

from forecasting.models.config import RecurrentForecasterConfig


class RecurrentDecoder(nn.Module):
    """Unrolls ``horizon`` steps from the encoder summary.

    Each step reads the previous value (the truth while training: teacher forcing; its own
    point forecast when predicting), that step's known covariates and the series embedding.
    """

    def __init__(
        self,
        cell_class: type[nn.Module],
        config: RecurrentForecasterConfig,
        enc_dim: int,
        emb_dim: int,
    ) -> None:
        super().__init__()
        self.config = config
        self.cell = cell_class(1 + config.n_covariates + emb_dim, config.hidden_size)
        self.init_state = nn.Linear(enc_dim, config.hidden_size)
        self.out = nn.Linear(config.hidden_size, config.n_outputs)

    def forward(
        self,
        summary: torch.Tensor,
        last: torch.Tensor,
        future: torch.Tensor | None,
        static: torch.Tensor | None,
        base: torch.Tensor | None,
        teacher: torch.Tensor | None,
    ) -> torch.Tensor:
        """[B, D] summary, [B] last input value -> [B, H, Q] normalised forecasts."""
        h = torch.tanh(self.init_state(summary))  # [B, hidden]
        c = torch.zeros_like(h)
        lstm = isinstance(self.cell, nn.LSTMCell)
        prev = last  # [B]
        outs = []
        for t in range(self.config.horizon):
            parts = [prev[:, None]]
            if future is not None:
                parts.append(future[:, t])
            if static is not None:
                parts.append(static)
            step_in = torch.cat(parts, dim=-1)  # [B, 1 + C + E]
            if lstm:
                h, c = self.cell(step_in, (h, c))
            else:
                h = self.cell(step_in, h)
            o = self.out(h)  # [B, Q]
            if base is not None:
                o = o + base[:, t, None]
            outs.append(o)
            prev = teacher[:, t] if teacher is not None else o[:, self.config.point_index]
        return torch.stack(outs, dim=1)  # [B, H, Q]
