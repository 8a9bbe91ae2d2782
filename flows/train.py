"""The ``train-forecasters`` flow: train each group's candidates, backtest, register, promote."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from db import make_engine
from flows import plots
from flows.checks import check_database, check_tracking
from flows.comparison import log_baseline_runs, log_horizon_errors, log_training_dataset
from flows.distributed_fit import fit_with_torchrun, processes_for
from flows.errors import SeqcastError, retry_unless_user_error
from flows.params import ModelGroup, TrainParams
from flows.progress import epoch_progress
from flows.series_data import GroupData, read_group
from flows.settings import Settings
from flows.tracking import (
    EpochLogger,
    child_run,
    flatten,
    get_alias,
    load_forecaster,
    log_forecaster,
    log_step_metric,
)
from forecasting.backtest import BacktestResult
from forecasting.forecaster import ArtifactError, GlobalForecaster
from forecasting.spec import ForecasterSpec
from forecasting.training import Callback, TrainingDiverged, TrainResult

CHAMPION = "champion"


@dataclass
class Candidate:
    """A trained and registered model version with its backtest."""

    cell: str
    run_id: str
    version: str
    backtest: BacktestResult
    forecaster: GlobalForecaster = field(repr=False)

    @property
    def score(self) -> float:
        return _score(self.backtest.summary["model"])


def _score(summary: dict[str, float]) -> float:
    """Lower is better: mean MASE across series, sMAPE where MASE is undefined."""
    for key in ("mase", "smape"):
        value = summary.get(key, math.nan)
        if math.isfinite(value):
            return value
    return math.inf  # no backtest window: never better than anything measured


def backtest_metrics(bt: BacktestResult) -> dict[str, float]:
    """Flat metric names, the same keys for every model: ``backtest_*`` and the baselines'."""
    prefix = {"model": "backtest", "naive": "naive", "seasonal_naive": "seasonal_naive"}
    out = {}
    for method, values in bt.summary.items():
        for metric, value in values.items():
            if math.isfinite(value):
                out[f"{prefix[method]}_{metric}"] = value
    out["backtest_windows"] = float(bt.n_windows)
    return out


@task(
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=retry_unless_user_error,
    cache_policy=NO_CACHE,
)
def read_group_data(group: ModelGroup) -> GroupData:
    """Read the group's observations from the database."""
    engine = make_engine(Settings.from_env().database_url)
    try:
        return read_group(engine, group)
    finally:
        engine.dispose()


@task(cache_policy=NO_CACHE)
def train_candidate(
    group: ModelGroup, cell: str, data: GroupData, parent_run_id: str, tags: dict[str, str]
) -> Candidate | None:
    """Train one cell type in its own MLflow child run; register it unless training diverged."""
    logger = get_run_logger()
    spec = group.spec(cell)
    forecaster = GlobalForecaster(spec)
    client = MlflowClient()
    with child_run(parent_run_id, f"{group.name}-{cell}", {**tags, "cell": cell}) as run:
        run_id = run.info.run_id
        mlflow.log_params(flatten(spec.to_dict()))
        mlflow.log_params({"group": group.name, "registered_model": group.registered_model})
        nproc = processes_for(group.processes)
        mlflow.log_param("processes", nproc)
        log_training_dataset(group, data)
        callbacks: list[Callback] = [
            EpochLogger(client, run_id),
            *epoch_progress(f"{group.name} {cell}", spec),
        ]
        try:
            if nproc > 1:
                forecaster, result = fit_with_torchrun(
                    spec, data.frame, data.freqs, nproc, callbacks
                )
            else:
                result = forecaster.fit(data.frame, data.freqs, callbacks)
        except TrainingDiverged as exc:
            logger.error("%s/%s diverged: %s", group.name, cell, exc)
            mlflow.set_tag("failure", str(exc))
        else:
            candidate = _finish_candidate(
                group, cell, spec, forecaster, result, run_id, client, data
            )
            log_horizon_errors(client, run_id, forecaster, data.frame, f"{group.name} {cell}")
            return candidate
    # Only now: leaving start_run's context marks the run FINISHED.
    client.set_terminated(run_id, "FAILED")
    return None


def _finish_candidate(
    group: ModelGroup,
    cell: str,
    spec: ForecasterSpec,
    forecaster: GlobalForecaster,
    result: TrainResult,
    run_id: str,
    client: MlflowClient,
    data: GroupData,
) -> Candidate:
    """Backtest, log metrics and figures, and register, inside the candidate's active run."""
    logger = get_run_logger()
    log_step_metric(client, run_id, "grad_norm_step", result.grad_norms)
    # A model trained by torchrun comes back as an artifact: score it on the same holdout.
    bt = (
        forecaster.backtest()
        if forecaster.has_holdout
        else forecaster.evaluate(data.frame, spec.panel)
    )
    metrics = backtest_metrics(bt)
    metrics.update(
        best_epoch=float(result.best_epoch),
        epochs_run=float(len(result.history)),
        train_seconds=result.seconds,
        windows_per_second=result.windows_seen / max(result.seconds, 1e-9),
    )
    mlflow.log_metrics(metrics)
    mlflow.log_dict(
        {
            **forecaster.data_stats,
            "excluded_series": forecaster.excluded,
            "device": result.device,
        },
        "data/training_data.json",
    )
    mlflow.log_text(bt.per_series.to_csv(index=False), "backtest/per_series.csv")
    for name, fig in (
        (
            "forecast_vs_actual",
            plots.forecast_vs_actual(bt.examples, f"{group.name} {cell}: last backtest window"),
        ),
        ("loss_curve", plots.loss_curves(result.history, f"{group.name} {cell}")),
        (
            "grad_norm",
            plots.grad_norms(result.grad_norms, spec.train.clip_norm, f"{group.name} {cell}"),
        ),
    ):
        mlflow.log_figure(fig, f"plots/{name}.png")
        plots.close(fig)
    version = log_forecaster(forecaster, group.registered_model)
    for key in ("backtest_mase", "backtest_smape"):
        if key in metrics:
            client.set_model_version_tag(
                group.registered_model, version.version, key, f"{metrics[key]:.4f}"
            )
    logger.info(
        "%s/%s: version %s, MASE %.3f (seasonal naive %.3f), %d epochs in %.1fs",
        group.name,
        cell,
        version.version,
        metrics.get("backtest_mase", math.nan),
        metrics.get("seasonal_naive_mase", math.nan),
        len(result.history),
        result.seconds,
    )
    return Candidate(cell, run_id, str(version.version), bt, forecaster)


def _common_score(a: BacktestResult, b: BacktestResult) -> tuple[float, float]:
    """Scores of two backtests over the series both of them cover."""
    pa = a.per_series[a.per_series["method"] == "model"].set_index("series_id")
    pb = b.per_series[b.per_series["method"] == "model"].set_index("series_id")
    common = pa.index.intersection(pb.index)
    if common.empty:
        return _score(a.summary["model"]), _score(b.summary["model"])

    def score(frame: pd.DataFrame) -> float:
        part = frame.loc[common]
        return _score({"mase": float(part["mase"].mean()), "smape": float(part["smape"].mean())})

    return score(pa), score(pb)


@task(
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=retry_unless_user_error,
    cache_policy=NO_CACHE,
)
def promote(group: ModelGroup, candidates: list[Candidate], data: GroupData) -> dict[str, Any]:
    """Alias the best candidate ``champion`` if it beats the current champion on this holdout."""
    client = MlflowClient()
    name = group.registered_model
    best = min(candidates, key=lambda c: c.score)
    current = get_alias(client, name, CHAMPION)
    decision: dict[str, Any] = {
        "challenger": f"{best.cell} v{best.version}",
        "challenger_score": best.score,
    }
    if current is None:
        promoted, reason = True, "no champion yet"
    else:
        try:
            champion = load_forecaster(name, str(current.version))
        except ArtifactError as exc:
            # e.g. written by an older seqcast: it could not forecast either, so replace it.
            champion = None
            promoted, reason = True, f"champion v{current.version} cannot be loaded ({exc})"
        if champion is not None:
            champion_bt = champion.evaluate(data.frame, best.forecaster.spec.panel)
            challenger_score, champion_score = _common_score(best.backtest, champion_bt)
            decision.update(champion=f"v{current.version}", champion_score=champion_score)
            promoted = challenger_score < champion_score
            reason = (
                f"challenger MASE {challenger_score:.4f} vs champion v{current.version} "
                f"{champion_score:.4f} on the same holdout"
            )
    if promoted:
        client.set_registered_model_alias(name, CHAMPION, best.version)
    beats_naive = (
        best.backtest.summary["model"]["mase"] < best.backtest.summary["seasonal_naive"]["mase"]
    )
    client.set_model_version_tag(
        name, best.version, "promotion", "promoted" if promoted else "kept champion"
    )
    client.set_model_version_tag(name, best.version, "promotion_reason", reason)
    client.set_model_version_tag(
        name, best.version, "beats_seasonal_naive", str(bool(beats_naive)).lower()
    )
    decision.update(promoted=promoted, reason=reason, beats_seasonal_naive=bool(beats_naive))
    return decision


@flow(name="train-forecasters", log_prints=True)
def train_forecasters(params: TrainParams | None = None) -> dict[str, Any]:
    """For each group: read its series, train every cell type, backtest, register, promote."""
    params = params or TrainParams()
    check_database()
    check_tracking()
    run_tags = {"flow_run_id": str(flow_run.id or "local"), "flow": "train-forecasters"}
    summary: dict[str, Any] = {}
    for group in params.groups:
        data = read_group_data(group)
        tags = {**run_tags, "group": group.name, "data_sha256": data.sha256}
        with mlflow.start_run(run_name=f"train-{group.name}", tags=tags) as parent:
            mlflow.log_params(
                {
                    "group": group.name,
                    "cells": ",".join(group.cells),
                    "data.rows": data.rows,
                    "data.series": len(data.freqs),
                    "data.sha256": data.sha256,
                }
            )
            log_training_dataset(group, data)
            candidates = [
                c
                for cell in group.cells
                if (c := train_candidate(group, cell, data, parent.info.run_id, tags)) is not None
            ]
            if not candidates:
                raise SeqcastError(
                    f"group {group.name!r}: every candidate diverged; "
                    f"see MLflow run {parent.info.run_id}"
                )
            log_baseline_runs(group, data, candidates[0].backtest, parent.info.run_id, tags)
            decision = promote(group, candidates, data)
            mlflow.log_dict(decision, "promotion.json")
            mlflow.set_tags({"champion_change": str(decision["promoted"]).lower()})
        summary[group.name] = {
            "registered_model": group.registered_model,
            "parent_run_id": parent.info.run_id,
            "rows": data.rows,
            "series": len(data.freqs),
            "candidates": {
                c.cell: {"version": c.version, "run_id": c.run_id, **backtest_metrics(c.backtest)}
                for c in candidates
            },
            "decision": decision,
        }
    create_markdown_artifact(key="train-forecasters", markdown=training_report(summary))
    return summary


def training_report(summary: dict[str, Any]) -> str:
    """Markdown table of each candidate next to the seasonal-naive baseline."""
    lines = [
        "| group | model | version | MASE | sMAPE | seasonal-naive MASE | seasonal-naive sMAPE |",
        "|---|---|---|---|---|---|---|",
    ]
    for group, s in summary.items():
        for cell, m in s["candidates"].items():
            lines.append(
                f"| {group} | {cell} | {m['version']} "
                f"| {m.get('backtest_mase', math.nan):.3f} "
                f"| {m.get('backtest_smape', math.nan):.2f} "
                f"| {m.get('seasonal_naive_mase', math.nan):.3f} "
                f"| {m.get('seasonal_naive_smape', math.nan):.2f} |"
            )
        d = s["decision"]
        lines.append(
            f"\n**{group}**: {'promoted' if d['promoted'] else 'kept champion'} ({d['reason']})\n"
        )
    return "\n".join(lines)
