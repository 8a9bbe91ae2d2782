"""Text: documents, their labels or tag sequences, text predictions and the analysts' views.

Revision ID: 0004
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from db.schema import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TEXT_PREDICTIONS_LATEST = """
CREATE VIEW text_predictions_latest AS
SELECT p.doc_id, p.model_name, p.model_version, p.mlflow_run_id, p.label, p.score,
       p.positive_score, p.tags, p.created_at,
       d.source, d.published_at, d.series_id, d.text
FROM (
    SELECT tp.*,
           ROW_NUMBER() OVER (
               PARTITION BY tp.doc_id, tp.model_name
               ORDER BY tp.created_at DESC, tp.prediction_id DESC
           ) AS rn
    FROM text_predictions tp
) p
JOIN documents d ON d.doc_id = p.doc_id
WHERE p.rn = 1
"""

# Day of publication in UTC: SQLite stores UTC text, PostgreSQL timestamptz.
_DAY = {
    "sqlite": "substr(published_at, 1, 10)",
    "postgresql": "CAST((published_at AT TIME ZONE 'UTC') AS date)",
}

DAILY_SENTIMENT = """
CREATE VIEW daily_sentiment AS
SELECT series_id, {day} AS day, model_name,
       COUNT(*) AS n_documents,
       AVG(positive_score) AS mean_positive_score
FROM text_predictions_latest
WHERE series_id IS NOT NULL AND published_at IS NOT NULL AND positive_score IS NOT NULL
GROUP BY series_id, {day}, model_name
"""


def upgrade() -> None:
    op.create_table(
        "documents",
        sa.Column("doc_id", sa.String(200), primary_key=True),
        sa.Column("source", sa.String(500), nullable=False),
        sa.Column("published_at", UTCDateTime),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("tokens", sa.JSON),
        sa.Column("series_id", sa.String(200), sa.ForeignKey("series.series_id")),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("batch_id", sa.Integer, sa.ForeignKey("ingest_batches.batch_id")),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_documents_series_published", "documents", ["series_id", "published_at"])
    op.create_table(
        "document_labels",
        sa.Column(
            "doc_id",
            sa.String(200),
            sa.ForeignKey("documents.doc_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("task", sa.String(50), primary_key=True),
        sa.Column("label", sa.Text),
        sa.Column("tags", sa.JSON),
        sa.Column("scheme", sa.String(10)),
        sa.Column("batch_id", sa.Integer, sa.ForeignKey("ingest_batches.batch_id")),
    )
    op.create_table(
        "text_predictions",
        sa.Column("prediction_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "doc_id",
            sa.String(200),
            sa.ForeignKey("documents.doc_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("model_version", sa.String(50), nullable=False),
        sa.Column("mlflow_run_id", sa.String(64), nullable=False),
        sa.Column("label", sa.Text),
        sa.Column("score", sa.Float),
        sa.Column("positive_score", sa.Float),
        sa.Column("tags", sa.JSON),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint(
            "doc_id", "model_name", "model_version", name="uq_text_predictions_doc_model"
        ),
    )
    op.create_index("ix_text_predictions_model", "text_predictions", ["model_name", "doc_id"])
    op.execute(TEXT_PREDICTIONS_LATEST)
    day = _DAY.get(op.get_bind().dialect.name, _DAY["postgresql"])
    op.execute(DAILY_SENTIMENT.format(day=day))


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS daily_sentiment")
    op.execute("DROP VIEW IF EXISTS text_predictions_latest")
    op.drop_table("text_predictions")
    op.drop_table("document_labels")
    op.drop_table("documents")
