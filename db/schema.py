"""Tables of the seqcast database (SQLAlchemy Core). Migrations create them; see migrations/."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)

metadata = MetaData()


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timestamp stored in UTC: ``timestamptz`` on PostgreSQL, fixed-width text on SQLite.

    Naive datetimes are refused on the way in (they are ambiguous); values come back aware.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if hasattr(value, "to_pydatetime"):
            value = value.to_pydatetime()
        if value.tzinfo is None:
            raise ValueError(f"naive timestamp {value!r}: seqcast stores timezone-aware UTC")
        value = value.astimezone(dt.UTC)
        # SQLite compares text: drop tzinfo so every value has the same fixed-width format.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = dt.datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


series = Table(
    "series",
    metadata,
    Column("series_id", String(200), primary_key=True),
    Column("kind", String(50), nullable=False),
    Column("freq", String(20), nullable=False),
    Column("unit", String(50)),
    Column("source", String(200)),
    Column("active", Integer, nullable=False, default=1),
    Column("created_at", UTCDateTime, nullable=False),
)

observations = Table(
    "observations",
    metadata,
    Column("series_id", String(200), ForeignKey("series.series_id"), primary_key=True),
    Column("ts", UTCDateTime, primary_key=True),
    Column("value", Float, nullable=False),
    Column("batch_id", Integer, ForeignKey("ingest_batches.batch_id")),
)

ingest_batches = Table(
    "ingest_batches",
    metadata,
    Column("batch_id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(500), nullable=False),
    Column("content_sha256", String(64), nullable=False),
    Column("received", Integer, nullable=False),
    Column("accepted", Integer, nullable=False),
    Column("rejected", Integer, nullable=False),
    Column("inserted", Integer, nullable=False),
    Column("updated", Integer, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=False),
    # "loading" until the last chunk commits; last_row is the source row up to which rows are
    # committed, so a crashed load resumes without skipping or repeating rows.
    Column("status", String(16), nullable=False, server_default="complete"),
    Column("last_row", BigInteger, nullable=False, server_default="0"),
    UniqueConstraint("source", "content_sha256", name="uq_ingest_batches_source_content"),
)

rejected_rows = Table(
    "rejected_rows",
    metadata,
    Column("batch_id", Integer, ForeignKey("ingest_batches.batch_id"), primary_key=True),
    Column("row_number", BigInteger, primary_key=True),
    Column("series_id", Text),
    Column("ts", Text),
    Column("value", Text),
    Column("reason", Text, nullable=False),
)

# Inputs of the forecasters beside the target (migration 0008 explains scope and kind).
covariates = Table(
    "covariates",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("scope", String(10), primary_key=True),  # series | group | global
    Column("scope_key", String(200), primary_key=True),  # series id, group name, '' (global)
    Column("ts", UTCDateTime, primary_key=True),
    Column("kind", String(16), nullable=False),  # known_future | past_only
    Column("value", Float, nullable=False),
    Column("batch_id", Integer, ForeignKey("ingest_batches.batch_id")),
    CheckConstraint("scope IN ('series', 'group', 'global')", name="ck_covariates_scope"),
    CheckConstraint("(scope = 'global') = (scope_key = '')", name="ck_covariates_scope_key"),
    CheckConstraint("kind IN ('known_future', 'past_only')", name="ck_covariates_kind"),
)

series_attributes = Table(
    "series_attributes",
    metadata,
    Column("series_id", String(200), ForeignKey("series.series_id"), primary_key=True),
    Column("name", String(200), primary_key=True),
    Column("kind", String(12), nullable=False),  # numeric | categorical
    Column("value_num", Float),
    Column("value_text", Text),
    Column("batch_id", Integer, ForeignKey("ingest_batches.batch_id")),
    CheckConstraint(
        "(kind = 'numeric' AND value_num IS NOT NULL AND value_text IS NULL) OR "
        "(kind = 'categorical' AND value_text IS NOT NULL AND value_num IS NULL)",
        name="ck_series_attributes_value",
    ),
)

# One row per configured incremental source (MQTT, HTTP, SQL, files): how far it has been
# loaded, as a JSON object. Written in the same transaction as the rows it covers.
source_watermarks = Table(
    "source_watermarks",
    metadata,
    Column("source", String(200), primary_key=True),
    Column("watermark", Text, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

forecast_runs = Table(
    "forecast_runs",
    metadata,
    Column("run_id", Integer, primary_key=True, autoincrement=True),
    Column("model_name", String(200), nullable=False),
    Column("model_version", String(50), nullable=False),
    Column("mlflow_run_id", String(64), nullable=False),
    Column("horizon", Integer, nullable=False),
    Column("issued_at", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("input_sha256", String(64), nullable=False),
    Column("n_series", Integer, nullable=False),
    Column("details", JSON),
    UniqueConstraint(
        "model_name", "model_version", "input_sha256", name="uq_forecast_runs_model_input"
    ),
)

forecasts = Table(
    "forecasts",
    metadata,
    Column(
        "run_id",
        Integer,
        ForeignKey("forecast_runs.run_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("series_id", String(200), ForeignKey("series.series_id"), primary_key=True),
    Column("ts", UTCDateTime, primary_key=True),
    Column("step", Integer, nullable=False),
    Column("yhat", Float, nullable=False),
    Column("yhat_lower", Float),
    Column("yhat_upper", Float),
    Index("ix_forecasts_series_ts", "series_id", "ts"),
)

documents = Table(
    "documents",
    metadata,
    Column("doc_id", String(200), primary_key=True),
    Column("source", String(500), nullable=False),
    Column("published_at", UTCDateTime),
    Column("text", Text, nullable=False),
    Column("tokens", JSON),  # the token list when the source was tokenized (CoNLL, CoNLL-U)
    Column("series_id", String(200), ForeignKey("series.series_id")),
    Column("content_sha256", String(64), nullable=False),
    Column("batch_id", Integer, ForeignKey("ingest_batches.batch_id")),
    Column("created_at", UTCDateTime, nullable=False),
)

document_labels = Table(
    "document_labels",
    metadata,
    Column(
        "doc_id", String(200), ForeignKey("documents.doc_id", ondelete="CASCADE"), primary_key=True
    ),
    Column("task", String(50), primary_key=True),  # e.g. sentiment, ner, pos
    Column("label", Text),  # classification
    Column("tags", JSON),  # tagging: one tag per token of documents.tokens
    Column("scheme", String(10)),  # BIO, BIOES or none
    Column("batch_id", Integer, ForeignKey("ingest_batches.batch_id")),
)

text_predictions = Table(
    "text_predictions",
    metadata,
    Column("prediction_id", Integer, primary_key=True, autoincrement=True),
    Column(
        "doc_id", String(200), ForeignKey("documents.doc_id", ondelete="CASCADE"), nullable=False
    ),
    Column("model_name", String(200), nullable=False),
    Column("model_version", String(50), nullable=False),
    Column("mlflow_run_id", String(64), nullable=False),
    Column("label", Text),
    Column("score", Float),  # probability of label
    Column("positive_score", Float),  # binary sentiment models: probability of the positive label
    Column("tags", JSON),  # taggers: [[token, tag], ...]
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("doc_id", "model_name", "model_version", name="uq_text_predictions_doc_model"),
)
