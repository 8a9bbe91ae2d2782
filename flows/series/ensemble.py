"""The ensemble candidate of a group (``ensemble: median``): the median of the trained cells.

It is backtested on the members' holdout windows (its metrics come from its own median
forecasts), logged in its own child run and registered as ONE model version whose run and
version name their members (``ensemble.members``: run ids, ``ensemble.member_versions``,
``ensemble.member_cells``); it then competes in promotion like any candidate.
"""

from __future__ import annotations

import math

import mlflow
from mlflow.tracking import MlflowClient
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.series.candidates import Candidate, backtest_metrics
from flows.series.covariates import covariate_tags
from flows.series.data import GroupData
from flows.series.params import ModelGroup
from flows.tracking import plots
from flows.tracking.registry import log_ensemble
from flows.tracking.runs import child_run
from forecasting.ensemble import EnsembleForecaster
from forecasting.forecaster import GlobalForecaster
from forecasting.spec import ForecasterSpec

ENSEMBLE_CELL = "ensemble"


def member_tags(members: list[Candidate], combine: str) -> dict[str, str]:
    """What links an ensemble to its members, as run params and tags and version tags."""
    return {
        "ensemble.combine": combine,
        "ensemble.members": ",".join(c.run_id for c in members),
        "ensemble.member_versions": ",".join(c.version for c in members),
        "ensemble.member_cells": ",".join(c.cell for c in members),
    }


def ensemble_candidates(
    group: ModelGroup, candidates: list[Candidate], data: GroupData, parent_run_id: str,
    tags: dict[str, str],
) -> list[Candidate]:  # fmt: skip
    """The group's ensemble candidate when it asks for one and two members trained, else none."""
    if group.ensemble == "off":
        return []
    members = [c for c in candidates if isinstance(c.forecaster, GlobalForecaster)]
    if len(members) < 2:
        get_run_logger().warning(
            "%s: no %s ensemble: %d candidate(s) trained (e.g. others diverged), it needs two",
            group.name, group.ensemble, len(members),
        )  # fmt: skip
        return []
    return [train_ensemble(group, members, data, parent_run_id, tags)]


@task(cache_policy=NO_CACHE)
def train_ensemble(
    group: ModelGroup, members: list[Candidate], data: GroupData, parent_run_id: str,
    tags: dict[str, str],
) -> Candidate:  # fmt: skip
    """Combine the members, backtest the combination, log and register it in its own run."""
    ensemble = EnsembleForecaster(
        [m.forecaster for m in members if isinstance(m.forecaster, GlobalForecaster)],
        [f"{m.cell} v{m.version}" for m in members],
        group.ensemble,
    )
    spec = ensemble.spec
    links = member_tags(members, group.ensemble)
    client = MlflowClient()
    name = f"{group.name}-{ENSEMBLE_CELL}"
    with child_run(parent_run_id, name, {**tags, "cell": ENSEMBLE_CELL, **links}) as run:
        mlflow.log_params(
            {
                **links,
                "group": group.name,
                "registered_model": group.registered_model,
                "model.cell": ENSEMBLE_CELL,  # what the status and report tables show
                "model.window": spec.model.window,
                "model.horizon": spec.model.horizon,
                "season_length": spec.season_length,
                "interval": spec.interval,
            }
        )
        # Same windows as the members': their fitted holdout, or the same split of the frame.
        bt = (
            ensemble.backtest()
            if ensemble.has_holdout
            else ensemble.evaluate(data.frame, spec.panel, data.exogenous)
        )
        metrics = backtest_metrics(bt)
        mlflow.log_metrics(metrics)
        mlflow.log_text(bt.per_series.to_csv(index=False), "backtest/per_series.csv")
        title = f"{group.name} {group.ensemble} of {links['ensemble.member_cells']}"
        fig = plots.forecast_vs_actual(bt.examples, f"{title}: last backtest window")
        mlflow.log_figure(fig, "plots/forecast_vs_actual.png")
        plots.close(fig)
        version = str(log_ensemble(ensemble, group.registered_model).version)
    _tag_versions(client, group, spec, members, version, links, metrics)
    get_run_logger().info(
        "%s/%s: version %s of %s, MASE %.3f (seasonal naive %.3f)",
        group.name, ENSEMBLE_CELL, version, ", ".join(ensemble.labels),
        metrics.get("backtest_mase", math.nan), metrics.get("seasonal_naive_mase", math.nan),
    )  # fmt: skip
    return Candidate(ENSEMBLE_CELL, run.info.run_id, version, bt, ensemble)


def _tag_versions(
    client: MlflowClient, group: ModelGroup, spec: ForecasterSpec, members: list[Candidate],
    version: str, links: dict[str, str], metrics: dict[str, float],
) -> None:  # fmt: skip
    """The ensemble's version names its members; each member's names the ensemble."""
    name = group.registered_model
    covariates = covariate_tags(spec)
    for key, value in {**links, **covariates}.items():
        client.set_model_version_tag(name, version, key, value or "-")
    for key in ("backtest_mase", "backtest_smape"):
        if key in metrics:
            client.set_model_version_tag(name, version, key, f"{metrics[key]:.4f}")
    for member in members:
        client.set_model_version_tag(name, member.version, "ensemble.member_of", version)
