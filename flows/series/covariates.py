"""A model group's covariates and static attributes as the project file declares them, what
they make of the forecaster's spec, and how runs record them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:  # the spec's module loads torch; the project file must not
    from forecasting.spec import ForecasterSpec


class CovariateSetting(BaseModel):
    """One covariate a group's models take, read from the ``covariates`` table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200, description="as ingested (--name)")
    kind: Literal["known_future", "past_only"] = Field(
        description="known_future: known over the horizon; past_only: up to the origin only"
    )
    missing: Literal["error", "ffill", "zero"] = Field(
        "error", description="what a missing value becomes: refused, carried forward, or 0"
    )
    resample: Literal["mean", "sum", "first", "last", "min", "max"] = Field(
        "mean", description="how the values within one step of the series' grid become one"
    )

    def describe(self) -> str:
        """``temperature (known_future, missing: ffill)``, with a rule other than mean."""
        rule = "" if self.resample == "mean" else f", resample: {self.resample}"
        return f"{self.name} ({self.kind}, missing: {self.missing}{rule})"


def spec_inputs(
    covariates: Sequence[CovariateSetting], attributes: Sequence[str]
) -> dict[str, tuple[Any, ...]]:
    """The ForecasterSpec fields for these covariates and static attributes."""
    return {
        "exogenous": tuple(c.name for c in covariates if c.kind == "known_future"),
        "past_covariates": tuple(c.name for c in covariates if c.kind == "past_only"),
        "covariate_missing": tuple((c.name, c.missing) for c in covariates),
        "covariate_resample": tuple((c.name, c.resample) for c in covariates),
        "static_attributes": tuple(attributes),
    }


def covariate_tags(spec: ForecasterSpec) -> dict[str, str]:
    """MLflow tags naming the covariates a model version uses (empty values: none)."""
    policy, rule = dict(spec.covariate_missing), dict(spec.covariate_resample)
    known, past = spec.exogenous, spec.past_covariates
    names = (*known, *past)
    return {
        "covariates.known_future": ",".join(known),
        "covariates.past_only": ",".join(past),
        "covariates.missing": ",".join(f"{n}={policy.get(n, 'error')}" for n in names),
        "covariates.resample": ",".join(f"{n}={rule.get(n, 'mean')}" for n in names),
    }
