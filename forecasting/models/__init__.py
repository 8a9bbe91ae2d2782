"""Forecasting models. Each takes its frozen config whole."""

from forecasting.models.recurrent import CELLS, RecurrentForecaster, RecurrentForecasterConfig

__all__ = ["CELLS", "RecurrentForecaster", "RecurrentForecasterConfig"]
