"""LSTM forecaster: gated memory cell, forget gate opened at initialisation."""

from __future__ import annotations

import torch
from torch import nn

from forecasting.models.base import RecurrentForecaster


class LSTMForecaster(RecurrentForecaster):
    """Long short-term memory encoder (Hochreiter & Schmidhuber 1997)."""

    layer_class = nn.LSTM
    decoder_cell_class = nn.LSTMCell
    gates = 4

    def init_gate_bias(self, bias: torch.Tensor) -> None:
        # Gate order is input, forget, cell, output. Forget-gate bias 1: remember by default
        # (Jozefowicz et al. 2015); split over bias_ih and bias_hh, which are summed.
        h = bias.shape[0] // 4
        bias[h : 2 * h] = 0.5
