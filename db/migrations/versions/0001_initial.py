"""Initial schema: series, observations, ingest batches, rejects, forecast runs, views.

Revision ID: 0001
Revises:
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from db.schema import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

LATEST_FORECASTS = """
CREATE VIEW latest_forecasts AS
SELECT series_id, ts, step, yhat, yhat_lower, yhat_upper,
       run_id, model_name, model_version, mlflow_run_id, issued_at, created_at
FROM (
    SELECT f.series_id, f.ts, f.step, f.yhat, f.yhat_lower, f.yhat_upper,
           r.run_id, r.model_name, r.model_version, r.mlflow_run_id, r.issued_at, r.created_at,
           ROW_NUMBER() OVER (
               PARTITION BY f.series_id, f.ts
               ORDER BY r.issued_at DESC, r.created_at DESC, r.run_id DESC
           ) AS rn
    FROM forecasts f
    JOIN forecast_runs r ON r.run_id = f.run_id
) ranked
WHERE rn = 1
"""

FORECAST_VS_ACTUAL = """
CREATE VIEW forecast_vs_actual AS
SELECT f.run_id, r.model_name, r.model_version, r.mlflow_run_id, r.issued_at,
       f.series_id, f.ts, f.step, f.yhat, f.yhat_lower, f.yhat_upper,
       o.value AS actual,
       o.value - f.yhat AS error,
       ABS(o.value - f.yhat) AS abs_error
FROM forecasts f
JOIN forecast_runs r ON r.run_id = f.run_id
JOIN observations o ON o.series_id = f.series_id AND o.ts = f.ts
"""


def upgrade() -> None:
    """Create every table of the first schema, then its two views.

    Over 60 lines on purpose: a migration is a record read top to bottom, one table after
    the other, and is not changed once released; helpers would only hide the order.
    """
    op.create_table(
        "series",
        sa.Column("series_id", sa.String(200), primary_key=True),
        sa.Column("kind", sa.String(50), nullable=False),
        sa.Column("freq", sa.String(20), nullable=False),
        sa.Column("unit", sa.String(50)),
        sa.Column("source", sa.String(200)),
        sa.Column("active", sa.Integer, nullable=False, server_default="1"),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "ingest_batches",
        sa.Column("batch_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(500), nullable=False),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("received", sa.Integer, nullable=False),
        sa.Column("accepted", sa.Integer, nullable=False),
        sa.Column("rejected", sa.Integer, nullable=False),
        sa.Column("inserted", sa.Integer, nullable=False),
        sa.Column("updated", sa.Integer, nullable=False),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("finished_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("source", "content_sha256", name="uq_ingest_batches_source_content"),
    )
    op.create_table(
        "observations",
        sa.Column("series_id", sa.String(200), sa.ForeignKey("series.series_id"), primary_key=True),
        sa.Column("ts", UTCDateTime, primary_key=True),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("batch_id", sa.Integer, sa.ForeignKey("ingest_batches.batch_id")),
    )
    op.create_table(
        "rejected_rows",
        sa.Column(
            "batch_id", sa.Integer, sa.ForeignKey("ingest_batches.batch_id"), primary_key=True
        ),
        sa.Column("row_number", sa.BigInteger, primary_key=True),
        sa.Column("series_id", sa.Text),
        sa.Column("ts", sa.Text),
        sa.Column("value", sa.Text),
        sa.Column("reason", sa.Text, nullable=False),
    )
    op.create_table(
        "forecast_runs",
        sa.Column("run_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("model_version", sa.String(50), nullable=False),
        sa.Column("mlflow_run_id", sa.String(64), nullable=False),
        sa.Column("horizon", sa.Integer, nullable=False),
        sa.Column("issued_at", UTCDateTime, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("input_sha256", sa.String(64), nullable=False),
        sa.Column("n_series", sa.Integer, nullable=False),
        sa.Column("details", sa.JSON),
        sa.UniqueConstraint(
            "model_name", "model_version", "input_sha256", name="uq_forecast_runs_model_input"
        ),
    )
    op.create_table(
        "forecasts",
        sa.Column(
            "run_id",
            sa.Integer,
            sa.ForeignKey("forecast_runs.run_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("series_id", sa.String(200), sa.ForeignKey("series.series_id"), primary_key=True),
        sa.Column("ts", UTCDateTime, primary_key=True),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("yhat", sa.Float, nullable=False),
        sa.Column("yhat_lower", sa.Float),
        sa.Column("yhat_upper", sa.Float),
    )
    op.create_index("ix_forecasts_series_ts", "forecasts", ["series_id", "ts"])
    op.execute(LATEST_FORECASTS)
    op.execute(FORECAST_VS_ACTUAL)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS forecast_vs_actual")
    op.execute("DROP VIEW IF EXISTS latest_forecasts")
    for table in ("forecasts", "forecast_runs", "rejected_rows", "observations"):
        op.drop_table(table)
    op.drop_table("ingest_batches")
    op.drop_table("series")
