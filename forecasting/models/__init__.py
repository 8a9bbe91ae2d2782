"""Forecasting models, one file per recurrent cell, each taking its frozen config whole."""

from forecasting.models.base import RecurrentForecaster
from forecasting.models.config import RecurrentForecasterConfig
from forecasting.models.gru import GRUForecaster
from forecasting.models.lstm import LSTMForecaster
from forecasting.models.rnn import RNNForecaster

MODELS: dict[str, type[RecurrentForecaster]] = {
    "rnn": RNNForecaster,
    "lstm": LSTMForecaster,
    "gru": GRUForecaster,
}


def build_model(config: RecurrentForecasterConfig) -> RecurrentForecaster:
    """The model class for ``config.cell``, built from the config."""
    return MODELS[config.cell](config)


__all__ = [
    "MODELS",
    "GRUForecaster",
    "LSTMForecaster",
    "RNNForecaster",
    "RecurrentForecaster",
    "RecurrentForecasterConfig",
    "build_model",
]
