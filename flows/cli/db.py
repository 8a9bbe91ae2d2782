"""``seqcast db``: the database schema."""

from __future__ import annotations

import typer

from db.engine import DatabaseError
from flows.cli.common import console, user_errors

app = typer.Typer(help="Database schema.", no_args_is_help=True)


@app.command("upgrade")
@user_errors
def upgrade() -> None:
    """Create or migrate the database schema (SEQCAST_DATABASE_URL, default sqlite:///seqcast.db)."""
    from db import make_engine
    from db.migrate import upgrade as migrate

    engine = make_engine()
    where = engine.url.render_as_string(hide_password=True)
    try:
        rev = migrate(engine)
    except Exception as exc:
        raise DatabaseError(f"migration failed on {where}: {exc}") from exc
    console.print(f"database {where} at migration {rev}")
