"""ForecasterSpec: everything that defines a forecaster, and the checks made before training."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from forecasting.covariates import check_calendar
from forecasting.models import MODELS, RecurrentForecasterConfig
from forecasting.panel import PanelConfig
from forecasting.training import TrainConfig


@dataclass(frozen=True)
class ForecasterSpec:
    """Architecture, training, data handling and covariates of one global forecaster.

    Attributes:
        interval: nominal coverage of ``[yhat_lower, yhat_upper]``.
        intervals: ``residual`` takes empirical quantiles of validation residuals around a
            point model; ``quantile`` trains the model itself to output the lower and upper
            quantiles and the median with the pinball loss.
        calendar: calendar features derived from each target's timestamp (hour, dayofweek,
            ...; see forecasting.covariates.CALENDAR), given over window and horizon.
        exogenous: names of exogenous variables known in the future (columns of the
            ``exogenous`` frame passed to fit and predict).
        embed_series: size of a learned embedding of each series' identity (0: none).
    """

    model: RecurrentForecasterConfig = field(default_factory=RecurrentForecasterConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    panel: PanelConfig = field(default_factory=PanelConfig)
    season_length: int = 24
    interval: float = 0.9
    intervals: Literal["residual", "quantile"] = "residual"
    calendar: tuple[str, ...] = ()
    exogenous: tuple[str, ...] = ()
    embed_series: int = 0

    def __post_init__(self) -> None:
        if self.model.cell not in MODELS:
            raise ValueError(f"unknown model {self.model.cell!r}; choose from {sorted(MODELS)}")
        if not 0.0 < self.interval < 1.0:
            raise ValueError(f"interval must be in (0, 1), got {self.interval}")
        if self.intervals not in ("residual", "quantile"):
            raise ValueError(f"intervals must be residual or quantile, got {self.intervals!r}")
        if self.season_length < 1 or self.embed_series < 0:
            raise ValueError("season_length must be >= 1 and embed_series >= 0")
        check_calendar(self.calendar)
        if self.panel.test_size and self.panel.test_size < self.model.horizon:
            raise ValueError(
                f"test_size ({self.panel.test_size}) must be 0 or at least one horizon "
                f"({self.model.horizon})"
            )
        if self.panel.val_size < self.model.horizon:
            raise ValueError(
                f"val_size ({self.panel.val_size}) must be at least one horizon "
                f"({self.model.horizon}) so early stopping has a window to validate on"
            )

    @property
    def quantile_levels(self) -> tuple[float, float, float]:
        alpha = round((1.0 - self.interval) / 2.0, 6)
        return (alpha, 0.5, round(1.0 - alpha, 6))

    def model_config(self, n_series: int) -> RecurrentForecasterConfig:
        """The model's config with what the spec implies (covariates, quantiles, embedding)."""
        return replace(
            self.model,
            quantiles=self.quantile_levels if self.intervals == "quantile" else (),
            n_covariates=2 * len(self.calendar) + len(self.exogenous),
            n_series=n_series if self.embed_series else 0,
            embedding_dim=self.embed_series,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ForecasterSpec:
        return cls(
            model=RecurrentForecasterConfig.from_dict(data["model"]),
            train=TrainConfig(**data["train"]),
            panel=PanelConfig(**data["panel"]),
            season_length=int(data["season_length"]),
            interval=float(data["interval"]),
            intervals=data.get("intervals", "residual"),
            calendar=tuple(data.get("calendar", ())),
            exogenous=tuple(data.get("exogenous", ())),
            embed_series=int(data.get("embed_series", 0)),
        )
