"""The ``pipeline`` flow: ingest, retrain the groups that are due, forecast."""

from __future__ import annotations

from mlflow.tracking import MlflowClient
from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from flows.checks import check_tracking
from flows.hooks import ALERT
from flows.project import require
from flows.reports.tables import markdown_table
from flows.series.due import retrain_due
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
from flows.tasks import subflow
from flows.tracking.runs import run_link


@flow(name="pipeline", log_prints=True, on_failure=ALERT, on_crashed=ALERT)
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
