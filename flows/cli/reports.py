"""``seqcast status`` and ``seqcast report``: where things stand, and the HTML report."""

from __future__ import annotations

from pathlib import Path

import typer

from flows.cli.common import console, user_errors

app = typer.Typer()


def show_status() -> None:
    """Print the status tables."""
    from db import make_engine
    from flows.project import locate
    from flows.reports.status import collect
    from flows.reports.tables import rich_table
    from flows.settings import Settings

    settings = Settings.from_env()
    engine = make_engine(settings.database_url)
    try:
        status = collect(engine, settings, locate())
    finally:
        engine.dispose()
    console.print(
        f"database {engine.url.render_as_string(hide_password=True)}, "
        f"MLflow {settings.mlflow_tracking_uri} (times UTC)",
        highlight=False,
    )
    console.print(rich_table("Series", status.series, empty="none; run `seqcast ingest`"))
    console.print(rich_table("Groups (project file)", status.groups, empty="none configured"))
    if status.unconfigured:
        rows = [{"series_id": s} for s in status.unconfigured]
        console.print(
            "[bold]Series in no group[/bold]: never trained or forecast; add a group that "
            "selects them (seqcast config show)",
            highlight=False,
        )
        console.print(rich_table("", rows))
    if status.overlaps:
        rows = [{"series_id": s, "groups": ", ".join(g), "taken by": g[0]}
                for s, g in status.overlaps.items()]  # fmt: skip
        console.print(
            "[bold]Series in two groups[/bold]: the group listed first takes them", highlight=False
        )
        console.print(rich_table("", rows))
    console.print(rich_table("Last ingests", status.ingests, empty="none yet"))
    champs = [{k: v for k, v in c.items() if k != "run_id"} for c in status.champions]
    console.print(rich_table("Champions", champs, empty="no registered model; run `seqcast train`"))
    console.print(
        rich_table(
            "Last forecast run per series",
            status.last_forecasts,
            empty="none; run `seqcast forecast`",
        )
    )
    if status.scheduled is not None:
        console.print(rich_table("Next scheduled runs", status.scheduled, empty="none scheduled"))
    for note in status.notes:
        console.print(f"note: {note}", highlight=False, soft_wrap=True)


@app.command()
@user_errors
def status() -> None:
    """Series counts, last ingest, champions and their metrics, last forecast per series,
    next scheduled runs (when PREFECT_API_URL names a Prefect server)."""
    show_status()


@app.command()
@user_errors
def report(
    output: Path = typer.Option(Path("seqcast-report.html"), "--output", "-o"),
) -> None:
    """Write a self-contained HTML report: forecast plots per series with actuals and
    intervals, the model comparison table and trailing accuracy (opens offline)."""
    from db import make_engine
    from db.migrate import require_current
    from flows.reports.html import write_report
    from flows.settings import Settings

    settings = Settings.from_env()
    engine = make_engine(settings.database_url)
    try:
        require_current(engine)
        path = write_report(engine, settings, output)
    finally:
        engine.dispose()
    console.print(f"report written to {path.resolve()} ({path.stat().st_size:,} bytes)")
