"""Daily sentiment per linked series into the ``covariates`` table, as a past-only covariate.

After ``score-text`` a binary classifier's daily mean positive score per series (the
``daily_sentiment`` view: documents linked to a series by ``documents.series_id``, on the UTC
day of ``published_at``) is loaded through the covariates ingest path, validated and
idempotent: one batch per content, ``received == accepted + rejected``; the same content again
is a no-op, and a day whose mean changed (new documents, a new champion) is updated in place.
Sentiment is known up to the day it is published, never over the horizon: ``past_only``.
"""

from __future__ import annotations

import hashlib

import pandas as pd

from db import make_engine
from db.covariates import CovariateDeclaration, ingest_covariates
from db.text_predictions import sentiment_series
from flows.settings import Settings
from flows.tasks import io_task

SOURCE = "daily_sentiment"


def sentiment_rows(daily: pd.DataFrame) -> pd.DataFrame:
    """The covariate rows (text columns ``scope_key, ts, value, row_number``) of a
    :func:`db.text_predictions.sentiment_series` frame, ordered by series and day."""
    daily = daily.sort_values(["series_id", "ts"], kind="stable")
    return pd.DataFrame(
        {
            "scope_key": daily["series_id"].astype(str).to_numpy(),
            "ts": [pd.Timestamp(t).isoformat() for t in daily["ts"]],
            "value": [repr(float(v)) for v in daily["value"]],  # repr: the float, exactly
            "row_number": range(1, len(daily) + 1),
        }
    )


def content_sha256(rows: pd.DataFrame) -> str:
    """SHA-256 of the rows' keys and values: the same daily sentiment, the same batch."""
    h = hashlib.sha256()
    for column in ("scope_key", "ts", "value"):
        h.update("\x1f".join(rows[column]).encode())
        h.update(b"\x1e")
    return h.hexdigest()


@io_task()
def load_sentiment_covariate(model_name: str, covariate: str) -> dict[str, object] | None:
    """Load ``model_name``'s daily sentiment per linked series as the past-only covariate
    ``covariate``; None when no document it scored is linked to a series."""
    engine = make_engine(Settings.from_env().database_url)
    try:
        rows = sentiment_rows(sentiment_series(engine, model_name))
        if rows.empty:
            return None
        declaration = CovariateDeclaration("past_only", "series", covariate)
        result = ingest_covariates(
            engine, rows, f"{SOURCE} {model_name}", content_sha256(rows), declaration
        )
    finally:
        engine.dispose()
    return {"covariate": covariate, "model": model_name, **result.as_dict()}
