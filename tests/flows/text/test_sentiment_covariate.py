"""Text sentiment end to end: score-text loads each classifier's daily sentiment per linked
series into the covariates table (past_only, idempotent, received = accepted + rejected), and a
price group declaring it trains and forecasts with it. Also the bundled stock_reviews link."""

from __future__ import annotations

import bz2
import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from db import make_engine
from db.covariates import covariate_kinds, read_covariates
from db.documents import ingest_documents
from db.ingest import ingest_observations
from db.observations import SeriesSpec
from db.text_predictions import read_text_view
from flows.cli import app
from flows.series.covariates import CovariateSetting
from flows.series.forecast import forecast
from flows.series.params import ForecastParams, ModelGroup, TrainParams
from flows.series.train import train_forecasters
from flows.sources.bundled import bundled_stocks
from flows.text.ingest import bundled_text_file, ingest_text
from flows.text.linked_reviews import stock_reviews_batch, trading_days
from flows.text.params import ClassifierParams, IngestTextParams, ScoreTextParams, TrainTextParams
from flows.text.score import score_text
from flows.text.train import train_text

pytestmark = pytest.mark.slow
IDS = ("stock-AAPL", "stock-MSFT")
DAYS, H = 150, 3
GAP = 3  # day d has no document when d % 7 == GAP: the covariate carries the last one forward
SENTIMENT = "seqcast-sentiment"


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _reviews() -> pd.DataFrame:
    """The bundled labelled critic snippets (text, label), each text once."""
    path, *_ = bundled_text_file("rotten_tomatoes")
    frame = pd.read_csv(io.BytesIO(bz2.decompress(path.read_bytes())))
    frame = frame[frame["category"].isin(["fresh", "rotten"])]
    frame = frame[~frame["text"].str.strip().duplicated()]
    return frame[["text", "category"]].rename(columns={"category": "label"})


def _prices(stocks: pd.DataFrame) -> tuple[pd.DataFrame, list[pd.Timestamp]]:
    """The first DAYS trading days of two bundled stocks, as raw rows, and those days."""
    part = pd.concat([stocks[stocks["series_id"] == s].sort_values("ts").iloc[:DAYS] for s in IDS])
    days = sorted(set(part["ts"]))
    assert len(days) == DAYS  # both trade on the same days in 2000
    raw = pd.DataFrame(
        {
            "series_id": part["series_id"].to_numpy(),
            "ts": [t.isoformat() for t in part["ts"]],
            "value": part["value"].astype(str).to_numpy(),
            "row_number": range(2, len(part) + 2),
        }
    )
    return raw, days


def _linked(texts: list[str], cells: list[tuple[str, pd.Timestamp]], path: Path) -> Path:
    """Two unlabelled documents per (series, day): at 13:00 and 23:30 UTC that day."""
    rows = [
        (texts[2 * k + i], (day + pd.Timedelta(at)).isoformat(), sid)
        for k, (sid, day) in enumerate(cells)
        for i, at in enumerate(("13h", "23h30min"))
    ]
    pd.DataFrame(rows, columns=["text", "published_at", "series_id"]).to_csv(path, index=False)
    return path


def _count(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def test_score_text_loads_daily_sentiment_and_a_price_group_uses_it(
    service_env: dict[str, str], stocks: pd.DataFrame, tmp_path: Path
) -> None:
    engine = make_engine(service_env["SEQCAST_DATABASE_URL"])
    raw, days = _prices(stocks)
    ingest_observations(engine, raw, "prices", "prices", SeriesSpec("price", "B", "USD"))
    reviews = _reviews()
    train = pd.concat([reviews[reviews["label"] == c].iloc[:300] for c in ("fresh", "rotten")])
    train.to_csv(tmp_path / "train.csv", index=False)
    ingest_text(IngestTextParams(paths=[str(tmp_path / "train.csv")], task="sentiment"))
    unseen = reviews.drop(index=train.index)["text"].tolist()
    assert not set(unseen) & set(train["text"])
    cells = [(s, d) for s in IDS for i, d in enumerate(days) if i % 7 != GAP]
    linked = _linked(unseen, cells, tmp_path / "linked.csv")
    assert ingest_text(IngestTextParams(paths=[str(linked)]))[0]["accepted"] == 2 * len(cells)
    tiny = {"max_epochs": 2, "embedding_dim": 16, "hidden_size": 16, "min_freq": 2}
    train_text(TrainTextParams(classifier=ClassifierParams(task="sentiment", **tiny), tagger=None))

    # `seqcast score-text --no-covariates` writes the predictions and loads no covariate.
    cli = CliRunner().invoke(app, ["score-text", "--tagger-task", "", "--no-covariates"])
    assert cli.exit_code == 0, cli.output
    assert f"{600 + 2 * len(cells)}" in cli.output and "covariates" not in cli.output
    assert _count(engine, "text_predictions") == 600 + 2 * len(cells)
    assert _count(engine, "covariates") == 0
    # Scoring again (nothing new) loads the daily sentiment of what is scored.
    scored = score_text(ScoreTextParams(classifier_tasks=["sentiment"], tagger_tasks=[]))
    assert scored.task("sentiment").written == 0
    loaded = scored.covariate("sentiment")
    daily = read_text_view(engine, "daily_sentiment", model_name=SENTIMENT)
    assert len(daily) == len(cells)  # the training reviews are linked to no series
    assert loaded["received"] == loaded["accepted"] == loaded["inserted"] == len(cells)
    assert (loaded["rejected"], loaded["already_loaded"]) == (0, False)
    assert covariate_kinds(engine) == {"sentiment": "past_only"}
    stored = read_covariates(engine, ["sentiment"], dict.fromkeys(IDS))
    both = daily.merge(stored, left_on=["series_id", "day"], right_on=["series_id", "ts"])
    assert len(both) == len(cells) == len(stored)
    assert np.array_equal(both["mean_positive_score"], both["sentiment"])
    # One day recomputed from the predictions: the mean over that UTC day's two documents.
    latest = read_text_view(engine, "text_predictions_latest", SENTIMENT, IDS[1])
    that_day = latest[latest["published_at"].dt.floor("D") == days[0]]
    assert len(that_day) == 2
    value = stored.set_index(["series_id", "ts"]).loc[(IDS[1], days[0]), "sentiment"]
    assert value == pytest.approx(that_day["positive_score"].mean(), abs=1e-12)

    rows, batches = _count(engine, "covariates"), _count(engine, "ingest_batches")
    again = score_text(ScoreTextParams(classifier_tasks=["sentiment"], tagger_tasks=[]))
    assert again.task("sentiment").written == 0
    assert again.covariate("sentiment")["already_loaded"] is True
    assert (_count(engine, "covariates"), _count(engine, "ingest_batches")) == (rows, batches)

    # News on a day that had none: one new covariate row, the other days left as they were.
    news = _linked(unseen[-2:], [(IDS[0], days[GAP])], tmp_path / "news.csv")
    ingest_text(IngestTextParams(paths=[str(news)]))
    more = score_text(ScoreTextParams(classifier_tasks=["sentiment"], tagger_tasks=[]))
    added = more.covariate("sentiment")
    assert (added["inserted"], added["updated"], added["rejected"]) == (1, 0, 0)
    assert added["received"] == added["accepted"] == len(cells) + 1
    assert _count(engine, "covariates") == rows + 1

    group = ModelGroup.model_validate(
        dict(
            name="prices", series_kind="price", cells=["gru"], window=10, horizon=H,
            season_length=5, hidden_size=8, num_layers=1, max_epochs=2, windows_per_epoch=64,
            batch_size=16, val_size=15, test_size=6,
            covariates=[CovariateSetting(name="sentiment", kind="past_only", missing="ffill")],
        )
    )  # fmt: skip
    train_forecasters(TrainParams(groups=[group]))
    client = MlflowClient()
    (version,) = client.search_model_versions("name = 'seqcast-prices'")
    assert version.tags["covariates.past_only"] == "sentiment"
    assert version.tags["covariates.missing"] == "sentiment=ffill"
    client.set_registered_model_alias("seqcast-prices", "champion", version.version)
    summary = forecast(ForecastParams(groups=[group]))
    assert not summary.failed
    assert _count(engine, "forecasts") == len(IDS) * H
    engine.dispose()


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_stock_reviews_link_each_trading_day_to_one_labelled_review(engine: Engine) -> None:
    path, *_ = bundled_text_file("rotten_tomatoes")
    batch = stock_reviews_batch(path)
    days = trading_days()
    assert len(batch.rows) == len(days) == 12_154  # AAPL, IBM, MSFT 3,270; GOOG 2,148; FB 196
    published = [str(r.published_at) for r in batch.rows]
    assert [(p[:10], r.series_id) for p, r in zip(published, batch.rows, strict=True)] == days
    assert all(p.endswith("T14:30:00+00:00") for p in published)
    assert len({r.text.strip() for r in batch.rows}) == len(batch.rows)
    assert {r.label for r in batch.rows} == {"fresh", "rotten"}
    assert stock_reviews_batch(path).content_sha256 == batch.content_sha256
    stocks = bundled_stocks()
    rows = pd.concat(stocks.read(100_000))
    ingest_observations(engine, rows, stocks.source, stocks.content_sha256, stocks.declare)
    first = ingest_documents(engine, batch)
    assert (first.received, first.accepted, first.rejected) == (12_154, 12_154, 0)
    assert ingest_documents(engine, batch).already_loaded is True
    with engine.connect() as conn:
        linked = conn.execute(
            text("SELECT count(*) FROM documents WHERE series_id IS NOT NULL")
        ).scalar_one()
    assert linked == 12_154
