"""Resumable ingest batches: a status and the last source row committed.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Batches written before this migration were loaded in one transaction: complete.
    op.add_column(
        "ingest_batches",
        sa.Column("status", sa.String(16), nullable=False, server_default="complete"),
    )
    op.add_column(
        "ingest_batches",
        sa.Column("last_row", sa.BigInteger, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    with op.batch_alter_table("ingest_batches") as batch:
        batch.drop_column("last_row")
        batch.drop_column("status")
