"""Engine creation: the URL from the environment, SQLite pragmas, psycopg 3 for PostgreSQL."""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

DEFAULT_DATABASE_URL = "sqlite:///seqcast.db"


class DatabaseError(RuntimeError):
    """A database problem a user can fix (bad URL, unreachable server, missing schema)."""


class DatabaseUnreachable(DatabaseError):
    """The database did not answer; may be transient, so callers may retry."""


def database_url(url: str | None = None) -> str:
    """Return the database URL: the argument, else ``SEQCAST_DATABASE_URL``, else SQLite.

    ``postgresql://`` and ``postgres://`` URLs are pinned to the psycopg 3 driver so the same
    URL works whatever SQLAlchemy's default PostgreSQL driver is.
    """
    raw = url or os.environ.get("SEQCAST_DATABASE_URL") or DEFAULT_DATABASE_URL
    if raw.startswith("postgres://"):
        raw = "postgresql://" + raw[len("postgres://") :]
    if raw.startswith("postgresql://"):
        raw = "postgresql+psycopg://" + raw[len("postgresql://") :]
    try:
        make_url(raw)
    except Exception as exc:  # sqlalchemy raises ArgumentError with a terse text
        raise DatabaseError(
            f"SEQCAST_DATABASE_URL={raw!r} is not a database URL; use e.g. "
            "sqlite:///seqcast.db or postgresql+psycopg://user@host:5432/db"
        ) from exc
    return raw


def _sqlite_immediate(conn: Any) -> None:
    # Take the write lock when the transaction starts. A deferred transaction that reads and
    # then writes fails at once with "database is locked" when another writer got in between
    # (the busy timeout does not apply to that upgrade); an immediate one waits its turn.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # SQLAlchemy, not the sqlite3 module, emits BEGIN (see _sqlite_immediate).
    dbapi_connection.isolation_level = None
    # WAL lets analysts read while a flow writes; busy_timeout waits instead of failing with
    # "database is locked" when two flows write at once.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str | None = None, **kwargs: Any) -> Engine:
    """Create an engine for ``url`` (see :func:`database_url`) with seqcast's settings."""
    resolved = database_url(url)
    if resolved.startswith("sqlite"):
        engine = create_engine(resolved, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_immediate)
        return engine
    return create_engine(resolved, pool_pre_ping=True, **kwargs)


def is_postgres(bind: Engine | Connection) -> bool:
    """True when ``bind`` talks to PostgreSQL (else SQLite, the other supported database)."""
    return bind.dialect.name == "postgresql"
