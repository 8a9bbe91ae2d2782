"""The ``seqcast`` command line: one command per pipeline stage, plus demo and serve."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar, cast

import typer
from pydantic import ValidationError
from rich.console import Console

from db.engine import DatabaseError
from flows import cli_users
from flows.cli_ingest import ingest_app
from flows.cli_model import model_app
from flows.errors import USER_ERRORS, SeqcastError

app = typer.Typer(
    help="seqcast: scheduled recurrent forecasting (Prefect + MLflow + SQL).", no_args_is_help=True
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(ingest_app, name="ingest")  # files (below) and configured sources: cli_ingest.py
app.add_typer(model_app, name="model")  # champion rollback: cli_model.py
# Piped output (CI logs, `make demo | tee`) gets wide tables instead of rich's 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)
F = TypeVar("F", bound=Callable[..., Any])
CLI_ERRORS: tuple[type[Exception], ...] = (*USER_ERRORS, ValidationError)


@app.callback()
def _quiet_prefect() -> None:
    """Runs before every command."""
    # The temporary Prefect server's telemetry heartbeat writes to its own SQLite file while
    # flows run and logs spurious "database is locked" tracebacks; seqcast sends no telemetry.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def _preflight() -> None:
    """Checks before a flow starts, so a user error never reaches the flow engine."""
    from db import make_engine
    from db.migrate import require_current
    from flows.errors import quiet_user_tracebacks

    engine = make_engine()
    try:
        require_current(engine)
    finally:
        engine.dispose()
    quiet_user_tracebacks()


def user_errors(fn: F) -> F:
    """Turn errors a user can fix into one line on stderr and exit code 1."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from flows.progress import session

        try:
            with session():
                return fn(*args, **kwargs)
        except CLI_ERRORS as exc:
            text = (
                str(exc).splitlines()[0] if not isinstance(exc, ValidationError) else _pydantic(exc)
            )
            Console(stderr=True, soft_wrap=True).print(f"[red]error:[/red] {text}", highlight=False)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _pydantic(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"invalid parameter {where}: {err['msg']}"


def _groups(names: list[str] | None) -> list[Any]:
    from flows.params import default_groups

    groups = default_groups()
    if not names:
        return groups
    unknown = sorted(set(names) - {g.name for g in groups})
    if unknown:
        raise SeqcastError(f"unknown group(s) {unknown}; choose from {[g.name for g in groups]}")
    return [g for g in groups if g.name in names]


@db_app.command("upgrade")
@user_errors
def db_upgrade() -> None:
    """Create or migrate the database schema (SEQCAST_DATABASE_URL, default sqlite:///seqcast.db)."""
    from db import make_engine
    from db.migrate import upgrade

    engine = make_engine()
    try:
        rev = upgrade(engine)
    except Exception as exc:
        raise DatabaseError(
            f"migration failed on {engine.url.render_as_string(hide_password=True)}: {exc}"
        ) from exc
    console.print(f"database {engine.url.render_as_string(hide_password=True)} at migration {rev}")


@ingest_app.command("files")
@user_errors
def ingest(
    paths: list[Path] = typer.Argument(
        None, help="CSV/Parquet files with columns series_id, ts, value"
    ),
    bundled: list[str] = typer.Option(
        [], "--bundled", help="bundled real data set: glucose, stocks"
    ),
    kind: str | None = typer.Option(None, help="declare new series in the files with this kind"),
    freq: str | None = typer.Option(
        None, help="... and this pandas frequency (e.g. 5min, h, D, B)"
    ),
    assume_timezone: str | None = typer.Option(None, help="zone for timestamps without offset"),
) -> None:
    """Load files or bundled data sets; rows failing validation go to rejected_rows."""
    from flows.ingest import ingest as ingest_flow
    from flows.params import IngestParams

    params = IngestParams(
        paths=[str(p) for p in paths or []],
        bundled=bundled,
        kind=kind,
        freq=freq,
        assume_timezone=assume_timezone,
    )
    if not params.paths and not params.bundled:
        raise SeqcastError("nothing to ingest: give file paths or --bundled glucose/stocks")
    _preflight()
    results = ingest_flow(params)
    _print_rows(
        "ingest",
        results,
        ["source", "received", "accepted", "rejected", "inserted", "updated", "already_loaded"],
    )
    for r in results:
        shown = cast(list[str], r.get("first_rejects", []))
        for line in shown:
            console.print(f"rejected {line}", highlight=False, soft_wrap=True)
        if cast(int, r["rejected"]) > len(shown):
            console.print(
                f"... all {r['rejected']} with reasons: SELECT * FROM rejected_rows "
                f"WHERE batch_id = {r['batch_id']}",
                highlight=False,
                soft_wrap=True,
            )


@app.command()
@user_errors
def train(
    group: list[str] = typer.Option(None, "--group", help="model group(s); default all"),
) -> None:
    """Train, backtest, register and promote the forecasters of each group."""
    from flows.params import TrainParams
    from flows.train import train_forecasters

    params = TrainParams(groups=_groups(group))
    _preflight()
    summary = train_forecasters(params)
    _print_training(summary)


@app.command()
@user_errors
def forecast(
    group: list[str] = typer.Option(None, "--group", help="model group(s); default all"),
) -> None:
    """Forecast every active series with its group's champion and write one run per group."""
    from flows.forecast import forecast as forecast_flow
    from flows.params import ForecastParams

    params = ForecastParams(groups=_groups(group))
    _preflight()
    summary = forecast_flow(params)
    _print_rows(
        "forecast",
        [{"group": g, **s} for g, s in summary.items()],
        ["group", "model", "run_id", "rows", "series", "created", "skipped"],
    )


@app.command()
@user_errors
def pipeline(
    bundled: list[str] = typer.Option([], "--bundled", help="bundled data set(s) to ingest first"),
    retrain_after_hours: float = typer.Option(24.0, help="retrain when the champion is older"),
) -> None:
    """Ingest, retrain the groups that are due, forecast: what the scheduled deployment runs."""
    from flows.params import IngestParams, PipelineParams
    from flows.pipeline import pipeline as pipeline_flow

    params = PipelineParams(
        ingest=IngestParams(bundled=bundled), retrain_after_hours=retrain_after_hours
    )
    _preflight()
    summary = pipeline_flow(params)
    _print_training(summary.get("train", {}))


@app.command()
@user_errors
def demo() -> None:
    """Run the pipeline on the bundled real data with embedded defaults and show the results."""
    from flows.demo import run_demo

    run_demo(console)


@app.command()
@user_errors
def serve(
    prefect_yaml: Path = typer.Option(Path("prefect.yaml"), help="deployments to serve"),
) -> None:
    """Serve every deployment of prefect.yaml on its schedule in this process (Ctrl-C stops)."""
    from flows.serving import serve_deployments

    serve_deployments(prefect_yaml)


# The users' commands (status, report) live in their own module.
cli_users.register(app, user_errors, console)


def _print_rows(title: str, rows: list[dict[str, Any]], columns: list[str]) -> None:
    from rich.table import Table

    table = Table(title=title)
    for c in columns:
        table.add_column(c)
    for r in rows:
        table.add_row(*[str(r.get(c, "")) for c in columns])
    console.print(table)


def _print_training(summary: dict[str, Any]) -> None:
    rows = []
    for group, s in summary.items():
        for cell, m in s["candidates"].items():
            rows.append(
                {
                    "group": group,
                    "model": cell,
                    "version": m["version"],
                    "MASE": f"{m.get('backtest_mase', float('nan')):.3f}",
                    "sMAPE": f"{m.get('backtest_smape', float('nan')):.2f}",
                    "seasonal-naive MASE": f"{m.get('seasonal_naive_mase', float('nan')):.3f}",
                    "seasonal-naive sMAPE": f"{m.get('seasonal_naive_smape', float('nan')):.2f}",
                    "champion": "yes"
                    if s["decision"]["promoted"]
                    and s["decision"]["challenger"].startswith(f"{cell} ")
                    else "",
                }
            )
    if rows:
        _print_rows("models vs seasonal naive (backtest)", rows, list(rows[0]))


def main() -> None:  # pragma: no cover - the `seqcast` console script
    # Subnormal floats as zero, set when the process starts, before torch creates its
    # threads, so every thread inherits the same setting (see forecasting.device).
    from forecasting.device import flush_denormals

    flush_denormals()
    app()


if __name__ == "__main__":  # pragma: no cover
    main()

# The text commands (ingest-text, train-text, score-text) live in their own module.
from flows import text_cli  # noqa: E402, F401
