"""ForecasterSpec: everything that defines a forecaster, and the checks made before training."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from forecasting.covariates import CovariateLayout, check_calendar
from forecasting.missing import MISSING_POLICIES, RESAMPLE_RULES
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
            ``exogenous`` frame passed to fit and predict), read over window and horizon.
        past_covariates: names of exogenous variables known only up to the forecast origin
            (columns of the same frame), read over the window only: values after the origin
            never reach the model.
        covariate_missing: ``(name, policy)`` pairs, the missing-value policy of a covariate
            (``error``, ``ffill`` or ``zero``, see forecasting.missing); unnamed ones: error.
        covariate_resample: ``(name, rule)`` pairs, how the values of a covariate within one
            grid step become one (``mean``, ``sum``, ``first``, ``last``, ``min``, ``max``);
            unnamed ones: mean.
        embed_series: size of a learned embedding of each series' identity (0: none).
        static_attributes: names of static attributes per series (the ``static`` frame
            passed to fit), fixed in the model when it is fitted.
    """

    model: RecurrentForecasterConfig = field(default_factory=RecurrentForecasterConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    panel: PanelConfig = field(default_factory=PanelConfig)
    season_length: int = 24
    interval: float = 0.9
    intervals: Literal["residual", "quantile"] = "residual"
    calendar: tuple[str, ...] = ()
    exogenous: tuple[str, ...] = ()
    past_covariates: tuple[str, ...] = ()
    covariate_missing: tuple[tuple[str, str], ...] = ()
    covariate_resample: tuple[tuple[str, str], ...] = ()
    embed_series: int = 0
    static_attributes: tuple[str, ...] = ()

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
        self._check_covariates()
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

    def _check_covariates(self) -> None:
        both = sorted(set(self.exogenous) & set(self.past_covariates))
        if both:
            raise ValueError(
                f"covariates {both} are declared both known-future (exogenous) and past-only; "
                "declare each once"
            )
        names = (*self.exogenous, *self.past_covariates)
        if len(set(names)) != len(names):
            raise ValueError(f"a covariate is declared twice: {list(names)}")
        for field_name, pairs, choices in (
            ("covariate_missing", self.covariate_missing, MISSING_POLICIES),
            ("covariate_resample", self.covariate_resample, RESAMPLE_RULES),
        ):
            for name, choice in pairs:
                if name not in names:
                    raise ValueError(
                        f"{field_name} names {name!r}, which is not a covariate of this "
                        f"model ({list(names)})"
                    )
                if choice not in choices:
                    raise ValueError(
                        f"{field_name} {choice!r} of covariate {name!r}: choose from "
                        f"{list(choices)}"
                    )

    @property
    def covariates(self) -> CovariateLayout:
        """The covariate matrix's columns and missing-value policies."""
        return CovariateLayout(
            self.calendar,
            self.exogenous,
            self.past_covariates,
            self.covariate_missing,
            self.covariate_resample,
        )

    @property
    def quantile_levels(self) -> tuple[float, float, float]:
        alpha = round((1.0 - self.interval) / 2.0, 6)
        return (alpha, 0.5, round(1.0 - alpha, 6))

    def model_config(self, n_series: int, n_static: int = 0) -> RecurrentForecasterConfig:
        """The model's config with what the spec implies (covariates, quantiles, embedding,
        ``n_static`` attribute values per series)."""
        return replace(
            self.model,
            quantiles=self.quantile_levels if self.intervals == "quantile" else (),
            n_covariates=2 * len(self.calendar) + len(self.exogenous),
            n_past_covariates=len(self.past_covariates),
            n_series=n_series if self.embed_series or n_static else 0,
            embedding_dim=self.embed_series,
            n_static=n_static,
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
            past_covariates=tuple(data.get("past_covariates", ())),
            covariate_missing=_pairs(data.get("covariate_missing", ())),
            covariate_resample=_pairs(data.get("covariate_resample", ())),
            embed_series=int(data.get("embed_series", 0)),
            static_attributes=tuple(data.get("static_attributes", ())),
        )


def _pairs(items: Any) -> tuple[tuple[str, str], ...]:
    return tuple((str(name), str(choice)) for name, choice in items)
