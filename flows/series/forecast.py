"""The ``forecast`` flow: each group's champion forecasts its series; one DB run per group."""

from __future__ import annotations

import pandas as pd
from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.runtime import flow_run

from db import make_engine
from db.forecasts import ForecastRun, WrittenRun, write_forecast_run
from flows.checks import check_database, check_tracking
from flows.hooks import ALERT, alert_skipped
from flows.progress import track
from flows.reports.tables import cell_text
from flows.series.data import read_group_data
from flows.series.groups import groups_to_run
from flows.series.params import ForecastParams, ModelGroup
from flows.series.results import (
    ForecastOutcome,
    ForecastSkipped,
    ForecastSummary,
    GroupForecast,
    GroupsFailed,
    group_failed,
)
from flows.settings import Settings
from flows.tasks import io_task
from flows.tracking.registry import get_alias, load_model
from flows.tracking.runs import run_link
from forecasting.ensemble import EnsembleForecaster, Forecaster


@io_task()
def resolve_model(group: ModelGroup, alias: str) -> tuple[str, str] | None:
    """(version, MLflow run id) behind ``seqcast-<group>@alias``, or None."""
    from mlflow.tracking import MlflowClient

    version = get_alias(MlflowClient(), group.registered_model, alias)
    return None if version is None else (str(version.version), str(version.run_id))


@io_task()
def fetch_model(group: ModelGroup, version: str) -> Forecaster:
    """Download and safely load a registered version (a single model or an ensemble)."""
    return load_model(group.registered_model, version)


@io_task()
def write_run(run: ForecastRun, rows: pd.DataFrame) -> WrittenRun:
    """Write the run and its rows in one transaction."""
    engine = make_engine(Settings.from_env().database_url)
    try:
        return write_forecast_run(engine, run, rows)
    finally:
        engine.dispose()


def history_needed(model: Forecaster) -> int:
    """Grid steps of history a forecast reads per series: the input window, the gap that
    interpolation may fill just before it (its left neighbour included) and one step for the
    grid's alignment. The scalers were fitted at training time; nothing else is needed."""
    return model.spec.model.window + model.spec.panel.max_fill + 2


def forecast_group(group: ModelGroup, alias: str) -> GroupForecast | ForecastSkipped:
    """Forecast the group's active series with ``seqcast-<group>@alias``; write one run."""
    logger = get_run_logger()
    resolved = resolve_model(group, alias)
    if resolved is None:
        msg = f"no {group.registered_model}@{alias}; run train-forecasters first"
        logger.warning(msg)
        return ForecastSkipped(group.name, msg)
    version, mlflow_run_id = resolved
    model = fetch_model(group, version)
    data = read_group_data(group, points=history_needed(model), spec=model.spec)
    # Raises CovariateError naming series and covariate when one is missing (the horizon's).
    rows, skipped = model.predict(data.frame, data.exogenous)
    if rows.empty:
        return ForecastSkipped(group.name, "no series could be forecast", skipped)
    # The newest observation any forecast in this run used.
    forecast_ids = rows["series_id"].unique()
    issued_at = data.frame.loc[data.frame["series_id"].isin(forecast_ids), "ts"].max()
    run = ForecastRun(
        model_name=group.registered_model,
        model_version=version,
        mlflow_run_id=mlflow_run_id,
        horizon=model.spec.model.horizon,
        issued_at=pd.Timestamp(issued_at).to_pydatetime(),
        input_sha256=data.sha256,
        details={
            "flow_run_id": str(flow_run.id or "local"),
            "series_skipped": skipped,
            # An ensemble's members (``lstm v3``), beside the ensemble's own version.
            **({"ensemble_members": model.labels} if isinstance(model, EnsembleForecaster) else {}),
        },
    )
    written = write_run(run, rows)
    series = int(rows["series_id"].nunique())
    logger.info(
        "%s: %s v%s -> run %s, %d rows for %d series%s",
        group.name, group.registered_model, version, written.run_id, written.rows, series,
        "" if written.created else " (same input: existing run kept)",
    )  # fmt: skip
    return GroupForecast(
        group=group.name,
        model=f"{group.registered_model} v{version}",
        version=version,
        mlflow_run_id=mlflow_run_id,
        run_id=written.run_id,
        rows=written.rows,
        series=series,
        created=written.created,
        series_skipped=skipped,
    )


def forecast_or_fail(group: ModelGroup, alias: str) -> ForecastOutcome:
    """:func:`forecast_group`, with its failure (a user's or a bug) as the group's outcome."""
    try:
        return forecast_group(group, alias)
    except Exception as exc:
        return group_failed(group.name, exc)


@flow(name="forecast", log_prints=True, on_failure=ALERT, on_crashed=ALERT)
def forecast(params: ForecastParams | None = None) -> ForecastSummary:
    """Forecast every active series of every group with that group's champion.

    Every group runs whatever happens to the others; when any failed, the flow then ends
    Failed naming them (:class:`GroupsFailed`, carrying the summary). Groups that wrote
    nothing (no champion, no series it could forecast) send a ``skipped`` alert.
    """
    params = params or ForecastParams()
    check_database()
    check_tracking()
    groups, unresolved = groups_to_run(params, "forecast", with_data=False)
    outcomes = [forecast_or_fail(g, params.alias) for g in track(groups, "forecast groups")]
    summary = ForecastSummary((*unresolved, *outcomes))
    create_table_artifact(
        key="forecast-runs",
        table=forecast_artifact_rows(summary),
        description="Forecast runs written, with the MLflow run of the model that made them",
    )
    skipped = {o.group: o.reason for o in summary.outcomes if isinstance(o, ForecastSkipped)}
    alert_skipped("forecast", params.config, skipped)
    if summary.failed:
        raise GroupsFailed(summary, summary.failed)
    return summary


def forecast_artifact_rows(summary: ForecastSummary) -> list[dict[str, str]]:
    """The artifact's rows: the summary's table, each MLflow run as a link, then failures."""
    rows = [
        {
            **{k: cell_text(v) for k, v in r.items() if k != "mlflow_run_id"},
            "mlflow_run": run_link(r["mlflow_run_id"]) if "mlflow_run_id" in r else "",
        }
        for r in summary.rows()
    ]
    rows += [{"group": f.group, "failed": f.reason} for f in summary.failed]
    return rows
