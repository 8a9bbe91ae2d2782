"""Text predictions: which documents a model version has not scored, write-back in one
transaction, and the analysts' views read back (latest prediction, daily sentiment)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import Engine, and_, func, select, text

from db.schema import documents, text_predictions
from db.upsert import upsert


@dataclass(frozen=True)
class TextPrediction:
    """One document's prediction by one model version."""

    doc_id: str
    label: str | None = None
    score: float | None = None
    positive_score: float | None = None
    tags: list[list[str]] | None = None


def documents_to_score(
    engine: Engine,
    model_name: str,
    model_version: str,
    limit: int | None = None,
    source_like: str | None = None,
) -> pd.DataFrame:
    """Documents without a prediction from this model version: doc_id, text, tokens.

    ``source_like`` keeps documents whose source matches this SQL LIKE pattern.
    """
    p = text_predictions.c
    stmt = (
        select(documents.c.doc_id, documents.c.text, documents.c.tokens)
        .outerjoin(
            text_predictions,
            and_(
                p.doc_id == documents.c.doc_id,
                p.model_name == model_name,
                p.model_version == model_version,
            ),
        )
        .where(p.prediction_id.is_(None))
        .order_by(documents.c.doc_id)
    )
    if source_like is not None:
        stmt = stmt.where(documents.c.source.like(source_like))
    if limit is not None:
        stmt = stmt.limit(limit)
    with engine.connect() as conn:
        rows = conn.execute(stmt).mappings().all()
    return pd.DataFrame([dict(r) for r in rows], columns=["doc_id", "text", "tokens"])


def write_text_predictions(
    engine: Engine,
    model_name: str,
    model_version: str,
    mlflow_run_id: str,
    predictions: Sequence[TextPrediction],
) -> int:
    """Insert all predictions in one transaction; rows this model version already wrote for a
    document are kept as they are. Returns the number of new rows."""
    if not predictions:
        return 0
    now = dt.datetime.now(dt.UTC)
    rows: list[dict[str, Any]] = [
        {
            "doc_id": p.doc_id,
            "model_name": model_name,
            "model_version": model_version,
            "mlflow_run_id": mlflow_run_id,
            "label": p.label,
            "score": p.score,
            "positive_score": p.positive_score,
            "tags": p.tags,
            "created_at": now,
        }
        for p in predictions
    ]
    with engine.begin() as conn:
        # Counted, not taken from rowcount: executemany's rowcount is -1 on some drivers.
        count = (
            select(func.count())
            .select_from(text_predictions)
            .where(
                text_predictions.c.model_name == model_name,
                text_predictions.c.model_version == model_version,
            )
        )
        before = conn.execute(count).scalar_one()
        upsert(
            conn,
            text_predictions,
            rows,
            keys=["doc_id", "model_name", "model_version"],
            update=False,
        )
        return int(conn.execute(count).scalar_one() - before)


def read_text_view(
    engine: Engine, view: str, model_name: str | None = None, series_id: str | None = None
) -> pd.DataFrame:
    """Read ``text_predictions_latest`` or ``daily_sentiment``, optionally for one model/series."""
    if view not in ("text_predictions_latest", "daily_sentiment"):
        raise ValueError(f"unknown view {view!r}")
    sql = f"SELECT * FROM {view} WHERE 1 = 1"  # view is one of two literals, never user text
    params: dict[str, Any] = {}
    if model_name is not None:
        sql += " AND model_name = :model_name"
        params["model_name"] = model_name
    if series_id is not None:
        sql += " AND series_id = :series_id"
        params["series_id"] = series_id
    sql += " ORDER BY day, series_id" if view == "daily_sentiment" else " ORDER BY doc_id"
    with engine.connect() as conn:
        frame = pd.read_sql(text(sql), conn, params=params)
    for col in ("created_at", "published_at"):
        if col in frame.columns:
            frame[col] = pd.to_datetime(frame[col], utc=True, format="ISO8601")
    if "day" in frame.columns:
        frame["day"] = pd.to_datetime(frame["day"].astype(str)).dt.tz_localize("UTC")
    return frame


def sentiment_series(engine: Engine, model_name: str) -> pd.DataFrame:
    """Daily mean positive score per series as a long frame ``series_id, ts, value`` (ts = the
    UTC day), the shape forecasters take as an exogenous input; plus ``n_documents``."""
    daily = read_text_view(engine, "daily_sentiment", model_name=model_name)
    return pd.DataFrame(
        {
            "series_id": daily["series_id"].astype(str),
            "ts": daily["day"],
            "value": daily["mean_positive_score"].astype(float),
            "n_documents": daily["n_documents"].astype(int),
        }
    )
