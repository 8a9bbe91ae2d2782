"""The analysts' views: the current definition of each is a SQL file in this folder.

``<name>.sql`` is the ``CREATE VIEW <name>`` statement for every database, with a header
comment describing each column. Where a database needs different SQL, ``<name>.<dialect>.sql``
(the dialect as SQLAlchemy names it: ``sqlite``, ``postgresql``) replaces it there. README.md
here says how to change a view. Migration 0006 creates the views from these files.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources

from sqlalchemy import Connection

# Creation order: a view comes after the views it reads (dropped in the reverse order).
VIEW_NAMES: tuple[str, ...] = (
    "latest_forecasts",
    "forecast_vintages",
    "forecast_vs_actual",
    "forecast_accuracy",
    "text_predictions_latest",
    "daily_sentiment",  # reads text_predictions_latest
)


def view_sql(name: str, dialect: str) -> str:
    """The ``CREATE VIEW`` statement of view ``name`` on ``dialect`` (e.g. ``"sqlite"``).

    Raises:
        ValueError: ``name`` is not one of :data:`VIEW_NAMES`.
    """
    if name not in VIEW_NAMES:
        raise ValueError(f"unknown view {name!r}; choose one of {VIEW_NAMES}")
    folder = resources.files(__name__)
    own = folder / f"{name}.{dialect}.sql"
    return (own if own.is_file() else folder / f"{name}.sql").read_text(encoding="utf-8")


def _execute(conn: Connection, sql: str) -> None:
    # Run the file's text as written: no bind parameters, so a colon or a percent sign in a
    # comment or a format string stays what it is on every driver.
    conn.exec_driver_sql(sql, execution_options={"no_parameters": True})


def drop_views(conn: Connection, names: Sequence[str] = VIEW_NAMES) -> None:
    """Drop those of the views ``names`` (in creation order) that exist, dependants first."""
    for name in reversed(names):
        _execute(conn, f"DROP VIEW IF EXISTS {name}")


def create_views(conn: Connection) -> None:
    """(Re)create every view from its file, in the caller's transaction."""
    drop_views(conn)
    for name in VIEW_NAMES:
        _execute(conn, view_sql(name, conn.dialect.name))
