"""Apply Alembic migrations programmatically (``seqcast db upgrade``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from db.engine import DatabaseError, DatabaseUnreachable

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    """The newest migration shipped with this version of seqcast."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The migration the database is at, or None for an empty database."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> str:
    """Migrate the database to ``revision`` (default: newest) and return the revision reached."""
    config = _config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
    reached = current_revision(engine)
    assert reached is not None
    return reached


def require_current(engine: Engine) -> None:
    """Raise a DatabaseError telling the user to migrate when the schema is behind."""
    where = engine.url.render_as_string(hide_password=True)
    try:
        rev = current_revision(engine)
    except Exception as exc:  # driver-specific connection errors
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatabaseUnreachable(f"cannot reach the database at {where}: {first_line}") from exc
    if rev != head_revision():
        raise DatabaseError(
            f"database at {where} is at migration "
            f"{rev or 'none'}, seqcast needs {head_revision()}: run `seqcast db upgrade`"
        )
