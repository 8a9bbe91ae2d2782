"""GRU forecaster: gated recurrence with fewer parameters than the LSTM."""

from __future__ import annotations

from torch import nn

from forecasting.models.base import RecurrentForecaster


class GRUForecaster(RecurrentForecaster):
    """Gated recurrent unit encoder (Cho et al. 2014)."""

    layer_class = nn.GRU
    decoder_cell_class = nn.GRUCell
    gates = 3
