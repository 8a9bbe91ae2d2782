"""``seqcast train``, ``forecast`` and ``pipeline``: the forecasting flows from the shell."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from flows.cli.common import preflight, print_rows, user_errors

if TYPE_CHECKING:
    from flows.series.results import GroupFailure, TrainingSummary

app = typer.Typer()
GROUPS = typer.Option(None, "--group", help="model group(s); default all")


def project_groups(names: list[str] | None) -> dict[str, object]:
    """The project file and the named groups, checked before any flow starts.

    Returns the flow parameters that select them: the file's path and the names.
    """
    from flows.project import load_project, require

    path = require()
    load_project(path).select_groups(names)  # a bad file or an unknown group fails here
    return {"config": str(path), "only": list(names or [])}


@app.command()
@user_errors
def train(group: list[str] = GROUPS) -> None:
    """Train, backtest, register and promote the forecasters of each group.

    Exits 1 when a group failed, after the table of the groups that trained.
    """
    from flows.series.params import TrainParams
    from flows.series.results import summary_of
    from flows.series.train import train_forecasters

    params = TrainParams(**project_groups(group))
    preflight()
    summary = summary_of(lambda: train_forecasters(params))
    print_training(summary)
    exit_on_failures(summary.failed)


@app.command()
@user_errors
def forecast(group: list[str] = GROUPS) -> None:
    """Forecast every active series with its group's champion and write one run per group.

    Exits 1 when a group failed, after the table of the other groups.
    """
    from flows.series.forecast import forecast as forecast_flow
    from flows.series.params import ForecastParams
    from flows.series.results import FORECAST_COLUMNS, summary_of

    params = ForecastParams(**project_groups(group))
    preflight()
    summary = summary_of(lambda: forecast_flow(params))
    print_rows("forecast", summary.rows(), FORECAST_COLUMNS)
    exit_on_failures(summary.failed)


@app.command()
@user_errors
def pipeline(
    group: list[str] = GROUPS,
    bundled: list[str] = typer.Option([], "--bundled", help="bundled data set(s) to ingest too"),
    retrain_after_hours: float = typer.Option(24.0, help="retrain when the champion is older"),
) -> None:
    """Ingest, retrain the groups that are due, forecast: what the scheduled deployment runs.

    Exits 1 when a group failed to train or forecast, after the table of the others.
    """
    from flows.series.params import IngestParams, PipelineParams
    from flows.series.pipeline import pipeline as pipeline_flow
    from flows.series.results import summary_of

    selection = project_groups(group)
    params = PipelineParams(
        **selection,
        ingest=IngestParams(bundled=bundled, config=str(selection["config"])),
        retrain_after_hours=retrain_after_hours,
    )
    preflight()
    summary = summary_of(lambda: pipeline_flow(params))
    print_training(summary.train)
    exit_on_failures(summary.failed)


def print_training(summary: TrainingSummary) -> None:
    """Each candidate next to the seasonal-naive baseline on the same backtest windows."""
    from flows.series.results import TRAINING_COLUMNS

    rows = summary.candidate_rows()
    if rows:
        print_rows("models vs seasonal naive (backtest)", rows, TRAINING_COLUMNS)
    for trained in summary.trained:
        settings = [s for s in trained.settings if s[2] != "default"]
        if settings:
            print_rows(
                f"{trained.group}: settings (from the project file or derived)",
                [
                    {"setting": name, "value": value, "from": source}
                    for name, value, source in settings
                ],
            )


def exit_on_failures(failures: Sequence[GroupFailure]) -> None:
    """One line per failed group on stderr, then exit 1; nothing when none failed."""
    if not failures:
        return
    err = Console(stderr=True, soft_wrap=True)
    for f in failures:
        err.print(f"[red]failed:[/red] group {f.group}: {f.reason}", highlight=False)
    raise typer.Exit(1)
