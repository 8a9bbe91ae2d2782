"""What every command module shares: the console, one-line user errors, checks before a flow.

Imports no command module (only prefect_server.py beside it), so each of them can import
it; and nothing heavy (prefect, mlflow, torch): a user's mistake is one line within about a
second, before any flow module loads or any Prefect server starts.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from functools import wraps
from typing import Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console

from flows.cli import prefect_server
from flows.errors import USER_ERRORS

# Piped output (CI logs, `make demo | tee`) gets wide tables instead of rich's 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)
F = TypeVar("F", bound=Callable[..., Any])
CLI_ERRORS: tuple[type[Exception], ...] = (*USER_ERRORS, ValidationError)
Check = Callable[[], object]
_flush_subnormals = False


def precheck(*checks: Check, database: bool = True) -> None:
    """Find the user's mistakes before any flow or Prefect server starts, cheapest first.

    Args:
        checks: the command's checks of its own inputs (files, options, sources file); each
            raises a SeqcastError with a message that says what to do.
        database: also check that the database answers and is migrated.
    """
    for check in checks:
        check()
    # The project file (seqcast.yaml) is validated here, once flows/project.py exists: a bad
    # file or an unknown group is found before the database is even opened.
    if database:
        _check_database()


def _check_database() -> None:
    from db import make_engine
    from db.engine import database_url
    from db.migrate import require_current

    url = database_url()
    # An unreachable PostgreSQL host answers nothing; give up after seconds, not minutes.
    pg = url.startswith("postgresql") and "connect_timeout" not in url
    extra = {"connect_args": {"connect_timeout": 5}} if pg else {}
    engine = make_engine(url, **extra)
    try:
        require_current(engine)
    finally:
        engine.dispose()


def preflight(*checks: Check, database: bool = True, wait: bool = True) -> None:
    """:func:`precheck`, then get the Prefect API ready for the command's flows.

    A temporary Prefect server starts in the background (see flows/cli/prefect_server.py).
    With ``wait=False`` the command imports its flow meanwhile and calls
    :func:`ready_for_flows` just before running it.
    """
    precheck(*checks, database=database)
    prefect_server.start()
    if wait:
        ready_for_flows()


def ready_for_flows() -> None:
    """Wait for the Prefect API; keep user errors' tracebacks out of Prefect's logs."""
    global _flush_subnormals
    from flows.errors import quiet_user_tracebacks

    prefect_server.wait()
    quiet_user_tracebacks()
    if _flush_subnormals and "torch" in sys.modules:
        # Subnormal floats as zero, set before the flow's first torch work, so every thread
        # torch creates inherits the same setting (see forecasting.device). The flows that
        # compute with torch import it with their module; the others (ingest) never load it.
        from forecasting.device import flush_denormals

        flush_denormals()
        _flush_subnormals = False


def flush_subnormals_before_flows() -> None:
    """Have this process flush subnormal floats before its first flow (the console script)."""
    global _flush_subnormals
    _flush_subnormals = True


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
                str(exc).splitlines()[0]
                if not isinstance(exc, ValidationError)
                else pydantic_message(exc)
            )
        except (RuntimeError, ValueError) as exc:
            # Prefect's own temporary server failing (where seqcast did not start one first).
            explained = prefect_server.explain(exc)
            if explained is None:
                raise
            text = explained
        Console(stderr=True, soft_wrap=True).print(f"[red]error:[/red] {text}", highlight=False)
        raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def pydantic_message(exc: ValidationError) -> str:
    """The first validation error as ``invalid parameter a.b: what is wrong``."""
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"invalid parameter {where}: {err['msg']}"


def print_rows(
    title: str, rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None
) -> None:
    """Print ``rows`` as one table (all their keys, or ``columns``)."""
    from flows.reports.tables import rich_table

    console.print(rich_table(title, rows, columns))


def print_rejects(lines: Sequence[str]) -> None:
    """The first rejected rows of a batch, one per line with file:line and reason."""
    for line in lines:
        console.print(f"rejected {line}", highlight=False, soft_wrap=True)
