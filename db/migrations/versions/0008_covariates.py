"""Covariates (known-future and past-only inputs of the forecasters) and static attributes.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03

``covariates`` holds one value per covariate, scope and timestamp. ``scope`` says whom a value
is for: one series (``scope_key`` is its series id), a group of the project file (``scope_key``
is the group's name) or every series (``global``, ``scope_key`` is the empty string: a primary
key column cannot be NULL on PostgreSQL). ``kind`` is ``known_future`` (known over the horizon:
holidays, weather forecasts, planned prices) or ``past_only`` (known up to the forecast origin:
a related series, sentiment). The primary key makes a re-ingest an upsert that changes nothing.

``series_attributes`` holds static attributes per series, numeric (``value_num``) or
categorical (``value_text``). Both keep the ingest batch that wrote each row, like observations.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from db.schema import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "covariates",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("scope", sa.String(10), primary_key=True),
        sa.Column("scope_key", sa.String(200), primary_key=True),
        sa.Column("ts", UTCDateTime, primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("batch_id", sa.Integer, sa.ForeignKey("ingest_batches.batch_id")),
        sa.CheckConstraint("scope IN ('series', 'group', 'global')", name="ck_covariates_scope"),
        sa.CheckConstraint("(scope = 'global') = (scope_key = '')", name="ck_covariates_scope_key"),
        sa.CheckConstraint("kind IN ('known_future', 'past_only')", name="ck_covariates_kind"),
    )
    op.create_table(
        "series_attributes",
        sa.Column("series_id", sa.String(200), sa.ForeignKey("series.series_id"), primary_key=True),
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("value_num", sa.Float),
        sa.Column("value_text", sa.Text),
        sa.Column("batch_id", sa.Integer, sa.ForeignKey("ingest_batches.batch_id")),
        sa.CheckConstraint(
            "(kind = 'numeric' AND value_num IS NOT NULL AND value_text IS NULL) OR "
            "(kind = 'categorical' AND value_text IS NOT NULL AND value_num IS NULL)",
            name="ck_series_attributes_value",
        ),
    )


def downgrade() -> None:
    op.drop_table("series_attributes")
    op.drop_table("covariates")
