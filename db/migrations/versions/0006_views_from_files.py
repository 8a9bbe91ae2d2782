"""Analysts' views from db/views/: one SQL file per view holds its current definition.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01

The files hold the same SQL that 0001, 0004 and 0005 created, so the views give the same
rows; from here on a view's definition is read in its file, not in migration history.
Downgrade restores 0005's definitions, taken from the migrations that wrote them.
"""

from __future__ import annotations

from types import ModuleType

from alembic import op

from db.views import create_views, drop_views

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# The views at 0005, in creation order.
VIEWS_0005 = (
    "latest_forecasts",
    "forecast_vintages",
    "forecast_vs_actual",
    "forecast_accuracy",
    "text_predictions_latest",
    "daily_sentiment",
)


def _migration(rev: str) -> ModuleType:
    """The module of an earlier migration, as Alembic loaded it."""
    script = op.get_context().script
    found = script.get_revision(rev) if script is not None else None
    if found is None:
        raise RuntimeError(f"migration {rev} not found; run migrations through db.migrate")
    return found.module


def upgrade() -> None:
    conn = op.get_bind()
    drop_views(conn, VIEWS_0005)
    create_views(conn)


def downgrade() -> None:
    conn = op.get_bind()
    dialect = conn.dialect.name
    drop_views(conn)
    drop_views(conn, VIEWS_0005)
    initial, texts, analysts = _migration("0001"), _migration("0004"), _migration("0005")
    op.execute(initial.LATEST_FORECASTS)
    op.execute(analysts.FORECAST_VINTAGES)
    op.execute(analysts.FORECAST_VS_ACTUAL)
    op.execute(analysts.forecast_accuracy_sql(dialect))
    op.execute(texts.TEXT_PREDICTIONS_LATEST)
    day = texts._DAY.get(dialect, texts._DAY["postgresql"])  # as 0004 chose it
    op.execute(texts.DAILY_SENTIMENT.format(day=day))
