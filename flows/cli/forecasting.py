"""``seqcast train``, ``forecast`` and ``pipeline``: the forecasting flows from the shell."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from flows.cli.common import preflight, print_rows, user_errors
from flows.errors import SeqcastError

if TYPE_CHECKING:
    from flows.series.results import TrainingSummary

app = typer.Typer()
GROUPS = typer.Option(None, "--group", help="model group(s); default all")


def select_groups(names: list[str] | None) -> list[Any]:
    """The named model groups (all when none are named); unknown names fail listing the known."""
    from flows.series.params import default_groups

    groups = default_groups()
    if not names:
        return groups
    unknown = sorted(set(names) - {g.name for g in groups})
    if unknown:
        raise SeqcastError(f"unknown group(s) {unknown}; choose from {[g.name for g in groups]}")
    return [g for g in groups if g.name in names]


@app.command()
@user_errors
def train(group: list[str] = GROUPS) -> None:
    """Train, backtest, register and promote the forecasters of each group."""
    from flows.series.params import TrainParams
    from flows.series.train import train_forecasters

    params = TrainParams(groups=select_groups(group))
    preflight()
    print_training(train_forecasters(params))


@app.command()
@user_errors
def forecast(group: list[str] = GROUPS) -> None:
    """Forecast every active series with its group's champion and write one run per group."""
    from flows.series.forecast import forecast as forecast_flow
    from flows.series.params import ForecastParams
    from flows.series.results import FORECAST_COLUMNS

    params = ForecastParams(groups=select_groups(group))
    preflight()
    print_rows("forecast", forecast_flow(params).rows(), FORECAST_COLUMNS)


@app.command()
@user_errors
def pipeline(
    bundled: list[str] = typer.Option([], "--bundled", help="bundled data set(s) to ingest first"),
    retrain_after_hours: float = typer.Option(24.0, help="retrain when the champion is older"),
) -> None:
    """Ingest, retrain the groups that are due, forecast: what the scheduled deployment runs."""
    from flows.series.params import IngestParams, PipelineParams
    from flows.series.pipeline import pipeline as pipeline_flow

    params = PipelineParams(
        ingest=IngestParams(bundled=bundled), retrain_after_hours=retrain_after_hours
    )
    preflight()
    print_training(pipeline_flow(params).train)


def print_training(summary: TrainingSummary) -> None:
    """Each candidate next to the seasonal-naive baseline on the same backtest windows."""
    from flows.series.results import TRAINING_COLUMNS

    rows = summary.candidate_rows()
    if rows:
        print_rows("models vs seasonal naive (backtest)", rows, TRAINING_COLUMNS)
