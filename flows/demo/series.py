"""``seqcast demo``: the pipeline flow on bundled real data, then where to look at results."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pandas as pd
from rich.console import Console
from sqlalchemy import Engine, text

from db import make_engine
from db.migrate import upgrade
from flows.demo.text import TextDemoSummary, run_text_demo
from flows.project import apply_environment, load_project, require
from flows.reports.tables import rich_table
from flows.series.params import PipelineParams
from flows.series.pipeline import pipeline
from flows.series.results import (
    ForecastSummary,
    GroupsFailed,
    PipelineSummary,
    TrainingSummary,
    summary_of,
)
from flows.settings import Settings

EXAMPLE_QUERIES = {
    "Latest forecast for the glucose sensor": (
        "SELECT series_id, ts, step, round(yhat, 1) AS yhat, round(yhat_lower, 1) AS lower,\n"
        "       round(yhat_upper, 1) AS upper, model_name, model_version\n"
        "FROM latest_forecasts WHERE series_id = 'cgm-glucose' ORDER BY ts LIMIT 5"
    ),
    "Forecast runs and what they wrote": (
        "SELECT r.run_id, r.model_name, r.model_version, r.issued_at, COUNT(*) AS n_rows,\n"
        "       COUNT(DISTINCT f.series_id) AS n_series\n"
        "FROM forecast_runs r JOIN forecasts f ON f.run_id = r.run_id\n"
        "GROUP BY r.run_id, r.model_name, r.model_version, r.issued_at ORDER BY r.run_id"
    ),
}


MODEL_COLUMNS = (
    "group", "model", "version", "MASE", "sMAPE", "MAE", "coverage", "seasonal-naive MASE",
    "seasonal-naive sMAPE", "seasonal-naive MAE",
)  # fmt: skip
FORECAST_COLUMNS = ("group", "model", "run_id", "rows", "series", "created", "not forecast")


@dataclass(frozen=True)
class DemoSummary:
    """What ``seqcast demo`` ran: the pipeline on the bundled series, then the text part."""

    pipeline: PipelineSummary
    text: TextDemoSummary


def run_demo(console: Console) -> DemoSummary:
    """Migrate, run ``pipeline`` on the project file (the repository's ``seqcast.yaml``: the
    bundled glucose and stock data, two groups), print a summary.

    Raises:
        GroupsFailed: a group failed to train or forecast (after everything else was shown).
    """
    project = require()
    apply_environment(load_project(project))
    settings = Settings.from_env()
    t0 = time.perf_counter()
    engine = make_engine(settings.database_url)
    rev = upgrade(engine)
    console.print(
        f"[bold]database[/bold] {engine.url.render_as_string(hide_password=True)} (migration {rev})"
    )
    console.print(f"[bold]mlflow[/bold]   {settings.mlflow_tracking_uri}")
    console.print(f"[bold]project[/bold]  {project.resolve()}")
    params = PipelineParams(config=str(project), retrain_after_hours=0.0)
    summary = summary_of(lambda: pipeline(params))
    elapsed = time.perf_counter() - t0
    console.rule("seqcast demo: summary")
    show_data(console, engine, summary)
    show_models(console, summary.train)
    show_forecasts(console, summary.forecast)
    console.rule("look at the results")
    show_where_to_look(console, engine, settings)
    text_summary = run_text_demo(console, engine)
    console.print(
        f"\ndemo finished in {time.perf_counter() - t0:.0f} s (forecasting part {elapsed:.0f} s)"
    )
    engine.dispose()
    if summary.failed:
        raise GroupsFailed(summary, summary.failed)
    return DemoSummary(summary, text_summary)


def show_data(console: Console, engine: Engine, summary: PipelineSummary) -> None:
    """Series per kind in the database, and the ingest batches of this run."""
    with engine.connect() as conn:
        series = pd.read_sql(
            text(
                "SELECT s.kind, COUNT(DISTINCT s.series_id) AS series, "
                "COUNT(o.ts) AS observations FROM series s "
                "LEFT JOIN observations o ON o.series_id = s.series_id GROUP BY s.kind"
            ),
            conn,
        )
    console.print(rich_table("Series in the database", series))
    ingest_rows = pd.DataFrame(summary.ingest)
    if not ingest_rows.empty:
        columns = ["source", "received", "accepted", "rejected", "inserted", "already_loaded"]
        console.print(rich_table("Ingest batches", ingest_rows, columns))


def show_models(console: Console, summary: TrainingSummary) -> None:
    """Every candidate's backtest next to the seasonal-naive baseline, each champion change,
    and each group that failed."""
    for g in summary.trained:
        change = g.decision.challenger if g.decision.promoted else "unchanged"
        console.print(f"{g.group}: champion -> {change} ({g.decision.reason})")
    for f in summary.failed:
        console.print(f"{f.group}: training failed: {f.reason}", highlight=False)
    rows = summary.candidate_rows()
    if rows:
        title = "Models (rolling-origin backtest) next to the seasonal-naive baseline"
        console.print(rich_table(title, rows, MODEL_COLUMNS))


def show_forecasts(console: Console, summary: ForecastSummary) -> None:
    """The forecast run each group wrote, and the series it could not forecast."""
    console.print(rich_table("Forecast rows written", summary.rows(), FORECAST_COLUMNS))
    for f in summary.failed:
        console.print(f"{f.group}: forecast failed: {f.reason}", highlight=False)


def show_where_to_look(console: Console, engine: Engine, settings: Settings) -> None:
    """The MLflow UI, the status and report commands, and example SQL with its answers."""
    console.print(
        "MLflow UI (runs, metrics, plots, registered models):\n"
        f"  .venv/bin/mlflow ui --backend-store-uri {settings.mlflow_tracking_uri} --port 5000\n"
        "  then open http://127.0.0.1:5000\n"
    )
    console.print(
        "Where things stand, and a self-contained HTML report (plots, model comparison):\n"
        "  .venv/bin/seqcast status\n"
        "  .venv/bin/seqcast report -o seqcast-report.html\n"
    )
    console.print(
        f"SQL against {engine.url.render_as_string(hide_password=True)} "
        "(every view and column: docs/analysts.md), for example:"
    )
    with engine.connect() as conn:
        for title, sql in EXAMPLE_QUERIES.items():
            console.print(f"\n-- {title}\n{sql};", highlight=False)
            console.print(rich_table("", pd.read_sql(text(sql), conn)))
