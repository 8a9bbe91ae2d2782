"""``seqcast demo`` and ``seqcast serve``: the whole job once, or every deployment on schedule."""

from __future__ import annotations

from pathlib import Path

import typer

from flows.cli.common import console, preflight, user_errors

app = typer.Typer()


@app.command()
@user_errors
def demo() -> None:
    """Run the pipeline on the bundled real data with embedded defaults and show the results."""
    preflight(database=False)  # one Prefect server for all its flows; it migrates the database
    from flows.demo.series import run_demo

    run_demo(console)


@app.command()
@user_errors
def serve(
    prefect_yaml: Path = typer.Option(Path("prefect.yaml"), help="deployments to serve"),
) -> None:
    """Serve every deployment of prefect.yaml on its schedule in this process (Ctrl-C stops).

    Groups with their own schedule in the project file get their own deployments.
    """
    preflight(database=False)  # the Prefect server it serves against
    from flows.project import locate
    from flows.serving import serve_deployments

    serve_deployments(prefect_yaml, locate())
