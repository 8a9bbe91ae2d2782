"""The ``seqcast`` command line: one module per command group, joined here and only here.

``common`` holds what the modules share; each module declares its own ``typer.Typer()``:
``db`` (schema), ``ingest`` (files, bundled data, configured sources), ``forecasting``
(train, forecast, pipeline), ``text`` (ingest-text, train-text, score-text), ``model``
(champion rollback), ``reports`` (status, report) and ``service`` (demo, serve).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import typer

from flows.cli import db, forecasting, ingest, model, project, reports, service, text

app = typer.Typer(
    help="seqcast: scheduled recurrent forecasting (Prefect + MLflow + SQL).", no_args_is_help=True
)
app.add_typer(db.app, name="db")
app.add_typer(ingest.app, name="ingest")
app.add_typer(model.app, name="model")
# Groups without a name add their commands to the top level (seqcast train, seqcast status...).
for group in (project.app, forecasting.app, text.app, reports.app, service.app):
    app.add_typer(group)


@app.callback()
def _every_command(
    config: Path | None = typer.Option(
        None,
        "--config",
        help="project file (default: $SEQCAST_CONFIG, else ./seqcast.yaml)",
        show_default=False,
    ),
) -> None:
    """Runs before every command."""
    from flows.errors import SeqcastError
    from flows.project import apply_environment, choose, load_project, locate

    choose(config)
    found = locate()
    if found is not None and found.is_file():
        # The file's URLs for every command; a bad file is reported by what reads it.
        with contextlib.suppress(SeqcastError):
            apply_environment(load_project(found))
    # The temporary Prefect server's telemetry heartbeat writes to its own SQLite file while
    # flows run and logs spurious "database is locked" tracebacks; seqcast sends no telemetry.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def main() -> None:  # pragma: no cover - the `seqcast` console script, python -m flows.cli
    """The console script: run the command, flushing subnormals before its first flow."""
    # Not here, at start: that would load torch (seconds) before a user's mistake is reported.
    from flows.cli.common import flush_subnormals_before_flows

    flush_subnormals_before_flows()
    app()
