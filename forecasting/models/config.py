"""The frozen configuration every recurrent forecaster takes whole."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

CELL_NAMES = ("rnn", "lstm", "gru")
NORMALIZATIONS = ("none", "level", "window")
HEADS = ("direct", "seq2seq")


@dataclass(frozen=True)
class RecurrentForecasterConfig:
    """Architecture of a recurrent forecaster.

    Attributes:
        cell: ``rnn`` (tanh), ``lstm`` or ``gru``.
        window: input length in grid steps; horizon: steps forecast at once.
        hidden_size, num_layers, dropout: the stacked encoder (dropout between layers).
        bidirectional: the encoder also reads the window backwards.
        layer_norm: layer normalisation on every encoder layer's outputs.
        normalize: ``level`` subtracts the window's last value (the model learns changes),
            ``window`` standardises each window by its own mean and standard deviation
            (reversible instance normalisation), ``none`` feeds the scaled series as is.
        patch_len: the encoder reads the window in segments of this many steps (1: step by
            step). A segment of one season (24 for hourly data) shortens the recurrence by
            that factor, which is what makes long windows affordable.
        seasonal_skip: when > 0, step ``h`` of the output is added to the input value this
            many steps earlier (one season back); the network then learns the correction.
        head: ``direct`` (all steps from the last encoder state) or ``seq2seq`` (a recurrent
            decoder fed its previous output: the truth while training, its own forecast when
            predicting).
        quantiles: empty for a point forecast; otherwise the quantile levels the model
            outputs (trained with the pinball loss), which must include 0.5.
        n_covariates: known time-varying inputs per step (calendar and exogenous features),
            available over the window and the horizon.
        n_past_covariates: time-varying inputs known only up to the forecast origin; the
            encoder reads them over the window, the heads never see them over the horizon.
        n_series, embedding_dim: a learned embedding of the series identity (0: none).
        n_static: static attribute values per series (numeric ones standardised, categorical
            ones one-hot), read with the embedding by every step, the head and the decoder.
    """

    cell: Literal["rnn", "lstm", "gru"] = "lstm"
    window: int = 48
    horizon: int = 12
    hidden_size: int = 64
    num_layers: int = 2
    dropout: float = 0.1
    bidirectional: bool = False
    layer_norm: bool = False
    normalize: Literal["none", "level", "window"] = "level"
    patch_len: int = 1
    seasonal_skip: int = 0
    head: Literal["direct", "seq2seq"] = "direct"
    quantiles: tuple[float, ...] = ()
    n_covariates: int = 0
    n_past_covariates: int = 0
    n_series: int = 0
    embedding_dim: int = 0
    n_static: int = 0

    def __post_init__(self) -> None:
        if self.cell not in CELL_NAMES:
            raise ValueError(f"cell must be one of {list(CELL_NAMES)}, got {self.cell!r}")
        for name in ("window", "horizon", "hidden_size", "num_layers", "patch_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.normalize not in NORMALIZATIONS:
            raise ValueError(f"normalize must be one of {list(NORMALIZATIONS)}")
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {list(HEADS)}, got {self.head!r}")
        if self.window % self.patch_len:
            raise ValueError(
                f"window ({self.window}) must be a multiple of patch_len ({self.patch_len})"
            )
        if self.seasonal_skip and not self.horizon <= self.seasonal_skip <= self.window:
            raise ValueError(
                f"seasonal_skip must lie between horizon ({self.horizon}) and window "
                f"({self.window}), got {self.seasonal_skip}; use a multiple of the season"
            )
        if self.quantiles:
            if 0.5 not in self.quantiles or any(not 0 < q < 1 for q in self.quantiles):
                raise ValueError(f"quantiles must lie in (0, 1) and include 0.5: {self.quantiles}")
            if list(self.quantiles) != sorted(set(self.quantiles)):
                raise ValueError(f"quantiles must be strictly increasing: {self.quantiles}")
        if self.n_static and not self.n_series:
            raise ValueError("n_static needs n_series: the attribute values are per series")
        if min(self.n_covariates, self.n_past_covariates, self.n_series, self.embedding_dim) < 0:
            raise ValueError(
                "n_covariates, n_past_covariates, n_series and embedding_dim must be >= 0"
            )

    @property
    def n_outputs(self) -> int:
        """Values per horizon step: one point forecast, or one per quantile."""
        return max(1, len(self.quantiles))

    @property
    def point_index(self) -> int:
        """Which output is the point forecast (the median when quantiles are on)."""
        return self.quantiles.index(0.5) if self.quantiles else 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RecurrentForecasterConfig:
        data = dict(data)
        if "level_norm" in data:  # artifacts written before `normalize` existed
            data["normalize"] = "level" if data.pop("level_norm") else "none"
        data["quantiles"] = tuple(data.get("quantiles", ()))
        return cls(**data)
