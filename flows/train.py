"""The ``train-forecasters`` flow: train each group's candidates, backtest, register, promote."""

from __future__ import annotations

import math
from typing import Any

import mlflow
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
from flows.lifecycle import CHAMPION, Candidate, champion_weights, promote  # noqa: F401
from flows.params import ModelGroup, TrainParams
from flows.progress import epoch_progress
from flows.series_data import GroupData, read_group
from flows.settings import Settings
from flows.tracking import (
    EpochLogger,
    child_run,
    flatten,
    log_forecaster,
    log_step_metric,
    run_link,
)
from forecasting.backtest import BacktestResult
from forecasting.forecaster import GlobalForecaster
from forecasting.spec import ForecasterSpec
from forecasting.training import Callback, TrainingDiverged, TrainResult


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
        init_state, note = _warm_start_weights(group, cell, nproc)
        try:
            if nproc > 1:
                forecaster, result = fit_with_torchrun(
                    spec, data.frame, data.freqs, nproc, callbacks
                )
            else:
                result = forecaster.fit(data.frame, data.freqs, callbacks, init_state=init_state)
                if init_state is not None:
                    note = f"{forecaster.warm_start_note} ({note})"
            if group.warm_start:
                mlflow.set_tags({"warm_start": str(init_state is not None).lower()})
                mlflow.set_tag("warm_start_note", note[:4000])
                logger.info("%s/%s: %s", group.name, cell, note)
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


def _warm_start_weights(group: ModelGroup, cell: str, nproc: int) -> tuple[Any, str]:
    """The champion's weights when the group asks for a warm start, and a note saying why."""
    if not group.warm_start:
        return None, "from scratch (warm_start off)"
    if nproc > 1:
        return None, "from scratch: warm start is not supported under torchrun"
    champion, why = champion_weights(group)
    if champion is None:
        return None, why
    if champion.spec.model.cell != cell:
        return None, f"from scratch: {why} is a {champion.spec.model.cell}, not a {cell}"
    return champion.state_dict(), why


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


def train_group(group: ModelGroup, run_tags: dict[str, str]) -> dict[str, Any]:
    """One group: read its series, train every cell type, backtest, register, promote."""
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
    return {
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


@flow(name="train-forecasters", log_prints=True)
def train_forecasters(params: TrainParams | None = None) -> dict[str, Any]:
    """For each group: read its series, train every cell type, backtest, register, promote.

    With ``dask_address`` the groups train in parallel on a Dask cluster (flows/fanout.py).
    """
    params = params or TrainParams()
    check_database()
    check_tracking()
    run_tags = {"flow_run_id": str(flow_run.id or "local"), "flow": "train-forecasters"}
    if params.dask_address is None:
        summary = {g.name: train_group(g, run_tags) for g in params.groups}
    else:
        from flows.fanout import train_groups_on_dask

        summary = train_groups_on_dask(params.groups, run_tags, params.dask_address)
    create_markdown_artifact(key="train-forecasters", markdown=training_report(summary))
    return summary


def training_report(summary: dict[str, Any]) -> str:
    """Markdown: each candidate next to the seasonal-naive baseline, its MLflow run, and the
    champion decision per group."""
    lines = [
        "| group | model | version | MASE | sMAPE | seasonal-naive MASE | seasonal-naive sMAPE "
        "| MLflow run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for group, s in summary.items():
        for cell, m in s["candidates"].items():
            lines.append(
                f"| {group} | {cell} | {m['version']} "
                f"| {m.get('backtest_mase', math.nan):.3f} "
                f"| {m.get('backtest_smape', math.nan):.2f} "
                f"| {m.get('seasonal_naive_mase', math.nan):.3f} "
                f"| {m.get('seasonal_naive_smape', math.nan):.2f} "
                f"| {run_link(m['run_id'])} |"
            )
    for group, s in summary.items():
        d = s["decision"]
        change = (
            f"champion is now v{d['challenger_version']}"
            if d["promoted"]
            else f"champion stays {d.get('champion', '(none)')}"
        )
        lines.append(
            f"\n**{group}** ({s['rows']} rows, {s['series']} series; parent run "
            f"{run_link(s['parent_run_id'])}): {change}. {d['reason']}\n"
        )
    return "\n".join(lines)
