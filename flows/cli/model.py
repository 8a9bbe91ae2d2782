"""``seqcast model``: the registry's champion alias, by hand (rollback)."""

from __future__ import annotations

import typer

from flows.cli.common import console, user_errors

app = typer.Typer(help="Registered models: champion rollback.", no_args_is_help=True)


@app.command("rollback")
@user_errors
def rollback(
    name: str = typer.Argument(..., help="registered model (seqcast-glucose) or group (glucose)"),
    to: str | None = typer.Option(
        None, "--to", help="version to make champion (default: the champion it replaced)"
    ),
) -> None:
    """Move the ``champion`` alias back to the previous champion (or to --to VERSION)."""
    from flows.settings import Settings
    from flows.tracking.lifecycle import rollback as do_rollback
    from flows.tracking.runs import configure

    configure(Settings.from_env())
    was, now = do_rollback(name, to)
    console.print(
        f"{now.name}@champion: v{was.version} -> v{now.version} "
        f"(v{was.version} tagged promotion=rolled back)",
        highlight=False,
    )
