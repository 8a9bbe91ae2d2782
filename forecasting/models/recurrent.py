"""Recurrent encoder (RNN, LSTM or GRU) with a direct multi-horizon head.

The encoder reads the input window; its last hidden state predicts all ``horizon`` steps at
once. With ``level_norm`` the window is made relative to its last value and that level is
added back to the output, so the network learns changes rather than levels (prices and
sensors drift far outside the range seen in training).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from torch import nn

CELLS: dict[str, Callable[..., nn.RNNBase]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


@dataclass(frozen=True)
class RecurrentForecasterConfig:
    """Architecture of a :class:`RecurrentForecaster`."""

    cell: Literal["rnn", "lstm", "gru"] = "lstm"
    window: int = 48
    horizon: int = 12
    hidden_size: int = 64
    num_layers: int = 2
    dropout: float = 0.1
    level_norm: bool = True

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {sorted(CELLS)}, got {self.cell!r}")
        for name in ("window", "horizon", "hidden_size", "num_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class RecurrentForecaster(nn.Module):
    """Many-to-one recurrent encoder + linear head producing H steps."""

    def __init__(self, config: RecurrentForecasterConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = CELLS[config.cell](
            input_size=1,
            hidden_size=config.hidden_size,
            num_layers=config.num_layers,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            batch_first=True,
        )
        self.head = nn.Linear(config.hidden_size, config.horizon)
        self._init_weights()

    def _init_weights(self) -> None:
        # Orthogonal recurrent weights keep the recurrent Jacobian's singular values near 1,
        # which is what lets gradients flow through long windows at the start of training.
        for name, param in self.encoder.named_parameters():
            if "weight_hh" in name:
                for gate in param.data.chunk(param.shape[0] // self.config.hidden_size):
                    nn.init.orthogonal_(gate)
            elif "weight_ih" in name:
                nn.init.xavier_uniform_(param.data)
            elif "bias" in name:
                nn.init.zeros_(param.data)
                if self.config.cell == "lstm":
                    # Forget-gate bias 1: remember by default (Jozefowicz et al. 2015).
                    h = self.config.hidden_size
                    param.data[h : 2 * h] = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predict the next ``horizon`` values.

        Args:
            x: [B, W] scaled input window.

        Returns:
            [B, H] scaled forecasts.
        """
        level = x[:, -1:] if self.config.level_norm else torch.zeros_like(x[:, -1:])  # [B, 1]
        out, _ = self.encoder((x - level).unsqueeze(-1))  # [B, W, 1] -> [B, W, hidden]
        return self.head(out[:, -1]) + level  # [B, hidden] -> [B, H]
