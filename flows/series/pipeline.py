"""The ``pipeline`` flow: ingest, retrain the groups that are due, forecast."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from db import make_engine
from db.accuracy import live_errors
from flows.checks import check_tracking
from flows.project import require
from flows.reports.tables import markdown_table
from flows.series.forecast import forecast
from flows.series.groups import groups_to_run
from flows.series.ingest import ingest
from flows.series.params import ForecastParams, ModelGroup, PipelineParams, TrainParams
from flows.series.results import (
    ForecastSummary,
    GroupFailure,
    GroupForecast,
    GroupsFailed,
    PipelineSummary,
    TrainingSummary,
    summary_of,
)
from flows.series.train import train_forecasters
from flows.settings import Settings
from flows.tasks import subflow
from flows.tracking.lifecycle import CHAMPION
from flows.tracking.registry import get_alias
from flows.tracking.runs import run_link


def backtest_mae(version: ModelVersion) -> pd.Series:
    """The version's backtest MAE per series (its run's ``backtest/per_series.csv``)."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = mlflow.artifacts.download_artifacts(
                run_id=version.run_id, artifact_path="backtest/per_series.csv", dst_path=tmp
            )
        except (MlflowException, OSError):
            return pd.Series(dtype="float64")
        frame = pd.read_csv(Path(path))
    model = frame[frame["method"] == "model"]
    return model.set_index(model["series_id"].astype(str))["mae"].astype("float64")


def drift(group: ModelGroup, champion: ModelVersion, ratio: float, min_actuals: int) -> str | None:
    """Why the champion's live error has drifted, or None.

    Live MAE per series comes from ``forecast_vs_actual`` (the champion's own forecasts whose
    actuals have arrived since), compared with the same series' backtest MAE.
    """
    engine = make_engine(Settings.from_env().database_url)
    try:
        live = live_errors(engine, group.registered_model, str(champion.version))
    finally:
        engine.dispose()
    live = live[live["n"] >= min_actuals]
    if live.empty:
        return None
    reference = backtest_mae(champion)
    worst: tuple[float, str] | None = None
    for row in live.itertuples():
        ref = reference.get(row.series_id)
        if ref is None or not ref > 0:
            continue
        found = row.mae / ref
        if found > ratio and (worst is None or found > worst[0]):
            worst = (
                found,
                f"{row.series_id}: live MAE {row.mae:.4g} over {row.n} actuals is "
                f"{found:.2f}x its backtest MAE {ref:.4g} (threshold {ratio}x)",
            )
    return None if worst is None else worst[1]


def retrain_due(
    client: MlflowClient,
    group: ModelGroup,
    after_hours: float,
    drift_ratio: float | None = None,
    drift_min_actuals: int = 12,
) -> tuple[bool, str]:
    """A group is due when it has no champion, its champion is older than ``after_hours``, or
    (with ``drift_ratio``) the champion's error on newly arrived actuals has drifted."""
    current = get_alias(client, group.registered_model, CHAMPION)
    if current is None:
        return True, "no champion"
    created = dt.datetime.fromtimestamp(current.creation_timestamp / 1000, dt.UTC)
    age_h = (dt.datetime.now(dt.UTC) - created).total_seconds() / 3600
    if age_h >= after_hours:
        return True, f"champion v{current.version} is {age_h:.1f} h old"
    if drift_ratio is not None:
        drifted = drift(group, current, drift_ratio, drift_min_actuals)
        if drifted is not None:
            return True, f"champion v{current.version} drifted: {drifted}"
    return False, f"champion v{current.version} is {age_h:.1f} h old (< {after_hours} h), no drift"


@flow(name="pipeline", log_prints=True)
def pipeline(params: PipelineParams | None = None) -> PipelineSummary:
    """Ingest configured sources, retrain when due, then forecast every group.

    A group whose retrain fails is still forecast with its current champion; when any group
    failed to train or forecast, the flow ends Failed naming them (:class:`GroupsFailed`,
    carrying the summary) after every group ran.
    """
    params = params or PipelineParams()
    logger = get_run_logger()
    ingest_params = params.ingest
    if params.groups is None and ingest_params.config is None:
        # The project file's bundled data sets and sources, as the ingest deployment loads.
        ingest_params = ingest_params.model_copy(update={"config": str(require(params.config))})
    ingested: list[dict[str, object]] = []
    if ingest_params.paths or ingest_params.bundled or ingest_params.config:
        ingested = subflow(lambda: ingest(ingest_params))
    check_tracking()
    groups, unresolved = groups_to_run(params, None)
    client = MlflowClient()
    due: list[ModelGroup] = []
    reasons: dict[str, str] = {}
    for group in groups:
        is_due, why = retrain_due(
            client, group, params.retrain_after_hours, params.drift_ratio, params.drift_min_actuals
        )
        reasons[group.name] = f"{'retrain' if is_due else 'no retrain'}: {why}"
        logger.info("%s: %s retrain (%s)", group.name, "will" if is_due else "will not", why)
        if is_due:
            due.append(group)
    trained = (
        subflow(lambda: summary_of(lambda: train_forecasters(TrainParams(groups=due))))
        if due
        else TrainingSummary()
    )
    trained = TrainingSummary((*unresolved, *trained.outcomes))
    forecasts = (
        subflow(lambda: summary_of(lambda: forecast(ForecastParams(groups=groups))))
        if groups
        else ForecastSummary()
    )
    summary = PipelineSummary(ingested, reasons, trained, forecasts)
    create_markdown_artifact(key="pipeline", markdown=pipeline_report(summary))
    if summary.failed:
        raise GroupsFailed(summary, summary.failed)
    return summary


def pipeline_report(summary: PipelineSummary) -> str:
    """Markdown: ingest counts, the retrain decision per group, champion changes, forecasts,
    and each group's failure."""
    rows = []
    for group, why in summary.retrain.items():
        rows.append(
            {
                "group": group,
                "retrain decision": why,
                "champion change": _champion_change(summary.train, group),
                "forecast": _forecast_done(summary.forecast, group),
            }
        )
    lines = [markdown_table(rows, ("group", "retrain decision", "champion change", "forecast"))]
    if summary.ingest:
        received, accepted = summary.ingest_counts()
        lines.append(
            f"\nIngest: {len(summary.ingest)} batch(es), {received} rows received, "
            f"{accepted} accepted."
        )
    return "\n".join(lines)


def _champion_change(trained: TrainingSummary, group: str) -> str:
    """``promoted: lstm v3 (run ...)``, ``kept: ...``, ``failed: why``, or ``-`` (not due)."""
    try:
        outcome = trained.outcome(group)
    except KeyError:
        return "-"
    if isinstance(outcome, GroupFailure):
        return f"failed: {outcome.reason}"
    d = outcome.decision
    return (
        f"{'promoted' if d.promoted else 'kept'}: {d.challenger} "
        f"(run {run_link(outcome.parent_run_id)})"
    )


def _forecast_done(forecasts: ForecastSummary, group: str) -> str:
    """``N rows, run R``, why it was skipped, or ``failed: why``."""
    try:
        outcome = forecasts.outcome(group)
    except KeyError:
        return "-"
    if isinstance(outcome, GroupForecast):
        return f"{outcome.rows} rows, run {outcome.run_id}"
    if isinstance(outcome, GroupFailure):
        return f"failed: {outcome.reason}"
    return outcome.reason
