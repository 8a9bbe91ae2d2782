"""Vanilla (Elman) RNN forecaster with tanh: the baseline the gated cells improve on."""

from __future__ import annotations

from torch import nn

from forecasting.models.base import RecurrentForecaster


class RNNForecaster(RecurrentForecaster):
    """tanh recurrence; orthogonal init is what keeps its gradients alive over long windows."""

    layer_class = nn.RNN
    decoder_cell_class = nn.RNNCell
    gates = 1
