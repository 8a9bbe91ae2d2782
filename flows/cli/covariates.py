"""``seqcast ingest covariates`` and ``seqcast ingest attributes``: files into the covariates
and series_attributes tables, validated, with rejects and counts, idempotent.

Registered on the ``ingest`` command group (flows/cli/ingest.py). No flow runs: like
``ingest mqtt``, the command writes to the database itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from flows.cli.common import console, precheck, print_rejects, print_rows, user_errors
from flows.errors import SeqcastError

COLUMNS = ["source", "received", "accepted", "rejected", "inserted", "updated", "already_loaded"]
TIMEZONE = typer.Option(None, help="zone for timestamps without offset")


def _declared(make: Any, options: str) -> Any:
    """The declaration, a bad option value being the user's error naming the options."""
    try:
        return make()
    except ValueError as exc:
        raise SeqcastError(f"{options}: {exc}") from None


def _show(result: Any, rejects: list[tuple[int, str]], path: Path) -> None:
    print_rows("ingest", [result.as_dict()], COLUMNS)
    print_rejects([f"{path}:{n}: {why}" for n, why in rejects])
    if result.rejected > len(rejects):
        console.print(
            f"... all {result.rejected} with reasons: SELECT * FROM rejected_rows "
            f"WHERE batch_id = {result.batch_id}",
            highlight=False,
            soft_wrap=True,
        )


@user_errors
def covariates(
    path: Path = typer.Argument(
        ..., help="CSV/Parquet file: ts, value, series_id (scope series) or group, [name]"
    ),
    kind: str = typer.Option(..., help="known_future (known over the horizon) or past_only"),
    name: str | None = typer.Option(None, help="the covariate of every row (else a name column)"),
    scope: str = typer.Option("series", help="series, group (of the project file) or global"),
    assume_timezone: str | None = TIMEZONE,
) -> None:
    """Load covariate values; rows failing validation go to rejected_rows."""
    from db import make_engine
    from db.batches import first_rejects
    from db.covariates import CovariateDeclaration, ingest_covariates
    from flows.sources.covariate_files import read_covariate_file

    declaration = _declared(
        lambda: CovariateDeclaration(kind, scope, name), "--kind / --scope / --name"
    )
    table = read_covariate_file(path, declaration)  # a bad file fails before the database
    precheck()
    engine = make_engine()
    try:
        result = ingest_covariates(
            engine, table.rows, table.source, table.content_sha256, declaration, assume_timezone
        )
        rejects = first_rejects(engine, result.batch_id) if result.rejected else []
    finally:
        engine.dispose()
    _show(result, rejects, Path(table.source))


@user_errors
def attributes(
    path: Path = typer.Argument(..., help="CSV/Parquet file: series_id, value, [name]"),
    kind: str = typer.Option(..., help="numeric or categorical"),
    name: str | None = typer.Option(None, help="the attribute of every row (else a name column)"),
) -> None:
    """Load static series attributes; rows failing validation go to rejected_rows."""
    from db import make_engine
    from db.batches import first_rejects
    from db.covariates import AttributeDeclaration, ingest_attributes
    from flows.sources.covariate_files import read_attribute_file

    declaration = _declared(lambda: AttributeDeclaration(kind, name), "--kind / --name")
    table = read_attribute_file(path, declaration)
    precheck()
    engine = make_engine()
    try:
        result = ingest_attributes(
            engine, table.rows, table.source, table.content_sha256, declaration
        )
        rejects = first_rejects(engine, result.batch_id) if result.rejected else []
    finally:
        engine.dispose()
    _show(result, rejects, Path(table.source))
