"""What every command module shares: the console, one-line user errors, checks before a flow.

Imports nothing from the other CLI modules, so each of them can import it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from functools import wraps
from typing import Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console

from flows.errors import USER_ERRORS

# Piped output (CI logs, `make demo | tee`) gets wide tables instead of rich's 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)
F = TypeVar("F", bound=Callable[..., Any])
CLI_ERRORS: tuple[type[Exception], ...] = (*USER_ERRORS, ValidationError)


def preflight() -> None:
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
                str(exc).splitlines()[0]
                if not isinstance(exc, ValidationError)
                else pydantic_message(exc)
            )
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
