"""``seqcast status`` and ``seqcast report``, registered on the main CLI by :func:`register`."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    if isinstance(value, pd.Timestamp):
        return "" if pd.isna(value) else value.strftime("%Y-%m-%d %H:%M")
    return str(value)


def _table(title: str, rows: pd.DataFrame | list[dict[str, Any]], empty: str) -> Table | str:
    frame = pd.DataFrame(rows)
    if frame.empty:
        return f"[bold]{title}[/bold]: {empty}"
    table = Table(title=title, title_justify="left")
    for col in frame.columns:
        table.add_column(str(col))
    for row in frame.itertuples(index=False):
        table.add_row(*[_fmt(v) for v in row])
    return table


def show_status(console: Console) -> None:
    """Print the status tables."""
    from db import make_engine
    from flows.settings import Settings
    from flows.status import collect

    settings = Settings.from_env()
    engine = make_engine(settings.database_url)
    try:
        status = collect(engine, settings)
    finally:
        engine.dispose()
    console.print(
        f"database {engine.url.render_as_string(hide_password=True)}, "
        f"MLflow {settings.mlflow_tracking_uri} (times UTC)",
        highlight=False,
    )
    console.print(_table("Series", status.series, "none; run `seqcast ingest`"))
    console.print(_table("Last ingests", status.ingests, "none yet"))
    champs = [{k: v for k, v in c.items() if k != "run_id"} for c in status.champions]
    console.print(_table("Champions", champs, "no registered model; run `seqcast train`"))
    console.print(
        _table(
            "Last forecast run per series", status.last_forecasts, "none; run `seqcast forecast`"
        )
    )
    if status.scheduled is not None:
        console.print(_table("Next scheduled runs", status.scheduled, "none scheduled"))
    for note in status.notes:
        console.print(f"note: {note}", highlight=False, soft_wrap=True)


def register(app: typer.Typer, wrap: Callable[..., Any], console: Console) -> None:
    """Add ``status`` and ``report`` to ``app``; ``wrap`` turns user errors into one line."""

    @app.command()
    @wrap
    def status() -> None:
        """Series counts, last ingest, champions and their metrics, last forecast per series,
        next scheduled runs (when PREFECT_API_URL names a Prefect server)."""
        show_status(console)

    @app.command()
    @wrap
    def report(
        output: Path = typer.Option(Path("seqcast-report.html"), "--output", "-o"),
    ) -> None:
        """Write a self-contained HTML report: forecast plots per series with actuals and
        intervals, the model comparison table and trailing accuracy (opens offline)."""
        from db import make_engine
        from db.migrate import require_current
        from flows.report import write_report
        from flows.settings import Settings

        settings = Settings.from_env()
        engine = make_engine(settings.database_url)
        try:
            require_current(engine)
            path = write_report(engine, settings, output)
        finally:
            engine.dispose()
        console.print(f"report written to {path.resolve()} ({path.stat().st_size:,} bytes)")
