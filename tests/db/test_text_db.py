"""Documents, labels and text predictions on SQLite and PostgreSQL: ingest, views, aggregate."""

from __future__ import annotations

import datetime as dt
import re

import pandas as pd
from sqlalchemy import Engine, func, select, text

from db.documents import DocumentBatch, DocumentRow, ingest_documents, read_labelled_documents
from db.observations import SeriesSpec, declare_series
from db.schema import document_labels, documents, rejected_rows
from db.text_predictions import (
    TextPrediction,
    documents_to_score,
    read_text_view,
    sentiment_series,
    write_text_predictions,
)
from tests.support import REPO


def _batch(rows: list[DocumentRow], sha: str = "a" * 64) -> DocumentBatch:
    return DocumentBatch(
        source="news.csv", content_sha256=sha, task="sentiment", rows=rows,
        read_rejects=[(4, "news.csv:4: expected 5 columns, got 2")],
    )  # fmt: skip


def _rows() -> list[DocumentRow]:
    return [
        DocumentRow(2, "Shares soar", "d1", None, "2024-03-01T09:00:00+00:00", "stock-A", "1"),
        DocumentRow(3, "Shares slump", "d2", None, "2024-03-01T23:30:00-02:00", "stock-A", "0"),
        DocumentRow(5, "   ", "d3", None, None, None, "1"),
        DocumentRow(6, "No zone", "d4", None, "2024-03-01T09:00:00", None, "1"),
        DocumentRow(7, "Who?", "d5", None, None, "stock-UNKNOWN", "1"),
        DocumentRow(8, "Shares soar", "d1", None, "2024-03-01T09:00:00+00:00", "stock-A", "1"),
        DocumentRow(9, "Quiet day", None, "wire", "2024-03-02T10:00:00Z", "stock-A", "1"),
    ]


def test_ingest_documents_is_idempotent_with_rejects(engine: Engine) -> None:
    with engine.begin() as conn:
        declare_series(conn, ["stock-A"], SeriesSpec("price", "B"), dt.datetime.now(dt.UTC))
    first = ingest_documents(engine, _batch(_rows()))
    assert (first.received, first.accepted, first.rejected, first.inserted) == (8, 3, 5, 3)
    assert first.accepted + first.rejected == first.received
    again = ingest_documents(engine, _batch(_rows()))
    assert again.already_loaded and again.batch_id == first.batch_id
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(documents)).scalar_one() == 3
        reasons = dict(
            conn.execute(
                select(rejected_rows.c.row_number, rejected_rows.c.reason).where(
                    rejected_rows.c.batch_id == first.batch_id
                )
            ).all()
        )
        published = conn.execute(
            select(documents.c.published_at).where(documents.c.doc_id == "d2")
        ).scalar_one()
    assert reasons[4].startswith("news.csv:4: expected 5 columns")
    assert reasons[5] == "empty document"
    assert "no UTC offset" in reasons[6]
    assert "unknown series 'stock-UNKNOWN'" in reasons[7]
    assert reasons[8] == "duplicate of line 2"
    assert published == dt.datetime(2024, 3, 2, 1, 30, tzinfo=dt.UTC)
    labelled = read_labelled_documents(engine, "sentiment")
    assert sorted(labelled["label"]) == ["0", "1", "1"]
    # New content under an existing doc_id updates it; the label follows.
    changed = [DocumentRow(2, "Shares soar higher", "d1", label="1", series_id="stock-A")]
    second = ingest_documents(engine, _batch(changed, sha="b" * 64))
    assert (second.inserted, second.updated, second.rejected) == (0, 1, 1)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(document_labels)).scalar_one() == 3


def test_tagged_documents_keep_tokens_and_tags(engine: Engine) -> None:
    rows = [
        DocumentRow(1, "EU rejects German call", tokens=["EU", "rejects", "German", "call"],
                    tags=["S-ORG", "O", "S-MISC", "O"]),
        DocumentRow(3, "bad", tokens=["bad"], tags=["O", "O"]),
    ]  # fmt: skip
    batch = DocumentBatch("ner.txt", "c" * 64, "ner", rows, scheme="BIOES")
    result = ingest_documents(engine, batch)
    assert (result.accepted, result.rejected) == (1, 1)
    frame = read_labelled_documents(engine, "ner")
    assert frame.loc[0, "tokens"] == ["EU", "rejects", "German", "call"]
    assert frame.loc[0, "tags"] == ["S-ORG", "O", "S-MISC", "O"]
    assert frame.loc[0, "scheme"] == "BIOES"


def test_predictions_views_and_daily_sentiment(engine: Engine) -> None:
    with engine.begin() as conn:
        declare_series(conn, ["stock-A"], SeriesSpec("price", "B"), dt.datetime.now(dt.UTC))
    ingest_documents(engine, _batch(_rows()))
    todo = documents_to_score(engine, "seqcast-sentiment", "1")
    assert len(todo) == 3
    quiet = todo.loc[todo["text"] == "Quiet day", "doc_id"].item()
    preds = [
        TextPrediction("d1", "1", 0.9, 0.9),
        TextPrediction("d2", "0", 0.7, 0.3),
        TextPrediction(quiet, "1", 0.6, 0.6),
    ]
    assert write_text_predictions(engine, "seqcast-sentiment", "1", "run1", preds) == 3
    assert write_text_predictions(engine, "seqcast-sentiment", "1", "run1", preds) == 0
    assert documents_to_score(engine, "seqcast-sentiment", "1").empty
    assert len(documents_to_score(engine, "seqcast-sentiment", "2")) == 3
    # Version 2 rescored d1: the latest view shows it, version 1 stays in the table.
    write_text_predictions(
        engine, "seqcast-sentiment", "2", "run2", [TextPrediction("d1", "0", 0.8, 0.2)]
    )
    latest = read_text_view(engine, "text_predictions_latest")
    assert len(latest) == 3
    d1 = latest[latest["doc_id"] == "d1"].iloc[0]
    assert (d1["model_version"], d1["label"], d1["series_id"]) == ("2", "0", "stock-A")
    assert d1["published_at"] == pd.Timestamp("2024-03-01T09:00:00Z")
    daily = read_text_view(engine, "daily_sentiment")
    # d1 (0.2, Mar 1) alone on Mar 1 UTC; d2 was published 01:30 UTC on Mar 2 with the quiet day.
    assert daily[["day", "n_documents"]].values.tolist() == [
        [pd.Timestamp("2024-03-01", tz="UTC"), 1],
        [pd.Timestamp("2024-03-02", tz="UTC"), 2],
    ]
    assert daily["mean_positive_score"].tolist() == [0.2, (0.3 + 0.6) / 2]
    exog = sentiment_series(engine, "seqcast-sentiment")
    assert list(exog.columns[:3]) == ["series_id", "ts", "value"]
    assert exog["series_id"].unique().tolist() == ["stock-A"]
    assert str(exog["ts"].dt.tz) == "UTC"
    tagged = [TextPrediction("d1", tags=[["Shares", "O"], ["soar", "O"]])]
    write_text_predictions(engine, "seqcast-tagger", "1", "run3", tagged)
    tag_view = read_text_view(engine, "text_predictions_latest", model_name="seqcast-tagger")
    assert tag_view.loc[0, "tags"] in (
        [["Shares", "O"], ["soar", "O"]],
        '[["Shares", "O"], ["soar", "O"]]',
    )

    # The text queries documented for analysts run here, on both databases, and find rows.
    doc = (REPO / "docs" / "analysts.md").read_text()
    queries = re.findall(r"```sql-text\n(.*?)```", doc, re.S)
    assert len(queries) == 2
    with engine.connect() as conn:
        for sql in queries:
            assert conn.execute(text(sql)).all(), sql
