"""The text flows on real data: ingest-text, train-text, score-text, checked in the database
and in MLflow; the text CLI commands."""

from __future__ import annotations

import bz2
import io
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient
from sqlalchemy import text
from typer.testing import CliRunner

from db import make_engine
from flows.cli import app
from flows.text.candidates import split_by_doc_id
from flows.text.ingest import bundled_text_file, ingest_text
from flows.text.params import (
    ClassifierParams,
    IngestTextParams,
    ScoreTextParams,
    TaggerParams,
    TrainTextParams,
)
from flows.text.score import score_text
from flows.text.train import train_text

pytestmark = pytest.mark.slow
TINY = {"max_epochs": 2, "embedding_dim": 32, "hidden_size": 32, "patience": 2}


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """One intra-op thread: on a shared 2-core machine, waiting OpenMP threads cost more than
    they bring (and CI's machine is shared by the whole suite)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _reviews(n: int, skip: int = 0) -> pd.DataFrame:
    """n fresh and n rotten critic snippets (text, label) from the bundled reviews, after the
    first ``skip`` of each."""
    path, *_ = bundled_text_file("rotten_tomatoes")
    frame = pd.read_csv(io.BytesIO(bz2.decompress(path.read_bytes())))
    frame = frame[~frame["text"].str.strip().duplicated()]  # a repeated text is one document
    parts = [frame[frame["category"] == c].iloc[skip : skip + n] for c in ("fresh", "rotten")]
    return pd.concat(parts)[["text", "category"]].rename(columns={"category": "label"})


def _review_slice(tmp_path: Path, n: int = 1000) -> tuple[Path, int]:
    """n fresh and n rotten critic snippets from the bundled reviews, plus two bad rows."""
    reviews = _reviews(n)
    out = tmp_path / "reviews.csv"
    reviews.to_csv(out, index=False)
    first_bad_line = out.read_text().count("\n") + 1  # some reviews span several lines
    with out.open("a") as fh:
        fh.write('"",fresh\n"an extra column",rotten,oops\n')
    return out, first_bad_line


def _treebank_slice(tmp_path: Path, n: int = 300) -> Path:
    path, *_ = bundled_text_file("turkish_treebank")
    blocks = path.read_text(encoding="utf-8").split("\n\n")[:n]
    out = tmp_path / "treebank.conllu"
    out.write_text("\n\n".join(blocks) + "\n\n", encoding="utf-8")
    return out


def test_split_by_doc_id_is_stable() -> None:
    frame = pd.DataFrame({"doc_id": [f"d{i}" for i in range(1000)]})
    train, val, test = split_by_doc_id(frame, 0.1, 0.2)
    assert len(train) + len(val) + len(test) == 1000
    assert 150 < len(test) < 250 and 60 < len(val) < 140
    again = split_by_doc_id(frame.iloc[::-1], 0.1, 0.2)[2]
    assert set(again["doc_id"]) == set(test["doc_id"])


def test_text_flows_from_files_to_predictions(service_env: dict[str, str], tmp_path: Path) -> None:
    (reviews, bad_line), treebank = _review_slice(tmp_path), _treebank_slice(tmp_path)
    params = IngestTextParams(paths=[str(reviews)], task="sentiment")
    first = ingest_text(params)[0]
    assert (first["received"], first["accepted"], first["rejected"]) == (2002, 2000, 2)
    assert first["first_rejects"] == [
        f"{reviews}:{bad_line}: empty document",
        f"{reviews}:{bad_line + 1}: expected 2 columns, got 3",
    ]
    assert ingest_text(params)[0]["already_loaded"] is True
    pos = ingest_text(IngestTextParams(paths=[str(treebank)], task="pos"))[0]
    assert pos["accepted"] == 300 and pos["task"] == "pos"

    training = TrainTextParams(
        classifier=ClassifierParams(
            task="sentiment",
            # min_freq 2: on 2,000 reviews a word seen once is noise (held-out accuracy 0.59
            # against 0.52 with 400 reviews a class, 0.65 against 0.64 with 1,000).
            **{**TINY, "max_epochs": 5, "patience": 5, "learning_rate": 5e-3, "min_freq": 2},
        ),
        tagger=TaggerParams(task="pos", use_crf=False, **TINY),
    )
    summary = train_text(training)
    assert summary.task("sentiment").decision.promoted is True
    assert summary.task("pos").decision.reason == "no champion yet"
    assert 0.0 < summary.task("pos").metrics["test_score"] <= 1.0
    client = MlflowClient()
    sentiment = summary.task("sentiment")
    assert str(client.get_model_version_by_alias("seqcast-sentiment", "champion").version) == "1"
    artifacts = {a.path for a in client.list_artifacts(sentiment.run_id, "evaluation")}
    assert "evaluation/confusion_matrix.csv" in artifacts
    epochs = client.get_metric_history(sentiment.run_id, "val_score")
    assert [m.step for m in epochs] == list(range(1, len(epochs) + 1))
    # Retraining compares the challenger with the champion on the same held-out documents.
    again = train_text(
        TrainTextParams(classifier=ClassifierParams(task="sentiment", **TINY), tagger=None)
    )
    decision = again.task("sentiment").decision
    assert decision.champion_version == "1" and "same" in decision.reason
    challenged = client.get_model_version("seqcast-sentiment", "1").tags
    assert challenged["challenged_by"] == decision.version
    assert challenged["challenge_reason"] == decision.reason

    # Reviews the models never saw, loaded unlabelled (a text column only): what scoring
    # writes for them is judged against their known labels below.
    held_out = _reviews(200, skip=1000)
    unseen = tmp_path / "unseen.csv"
    held_out[["text"]].to_csv(unseen, index=False)
    n = len(held_out)
    assert ingest_text(IngestTextParams(paths=[str(unseen)]))[0]["accepted"] == n
    scored = score_text(ScoreTextParams(classifier_tasks=["sentiment"], tagger_tasks=["pos"]))
    assert scored.task("sentiment").written == 2300 + n  # all: 2,000 reviews, 300 sentences, unseen
    assert scored.task("pos").written == 2300 + n
    rescored = score_text(ScoreTextParams(classifier_tasks=["sentiment"], tagger_tasks=["pos"]))
    assert rescored.task("sentiment").written == 0
    engine = make_engine(service_env["SEQCAST_DATABASE_URL"])
    with engine.connect() as conn:
        latest = pd.read_sql(text("SELECT * FROM text_predictions_latest"), conn)
    engine.dispose()
    assert len(latest) == 2 * (2300 + n)
    sentiment_rows = latest[latest["model_name"] == "seqcast-sentiment"]
    assert sentiment_rows["label"].isin(["fresh", "rotten"]).all()
    assert sentiment_rows["positive_score"].between(0, 1).all()
    truth = dict(zip(held_out["text"].str.strip(), held_out["label"], strict=True))
    judged = sentiment_rows[sentiment_rows["text"].isin(truth)]
    assert len(judged) == n
    accuracy = float((judged["label"] == judged["text"].map(truth)).mean())
    print(f"held-out accuracy of the written predictions: {accuracy:.3f}")
    assert accuracy > 0.58  # about 400 unseen reviews, after a few epochs of a tiny model


def test_text_cli_reports_rejects_and_user_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_harness: None
) -> None:
    runner = CliRunner()
    monkeypatch.setenv("SEQCAST_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    bad = tmp_path / "tags.conll"
    bad.write_bytes(b"EU B-ORG\nrejects O\n\nBad Q-PER\n\nok O\n")
    result = runner.invoke(app, ["ingest-text", str(bad), "--task", "ner"])
    assert result.exit_code == 0, result.output
    assert f"rejected {bad}:4: unknown tag 'Q-PER'" in result.output
    missing = runner.invoke(app, ["ingest-text", str(tmp_path / "nope.csv")])
    assert missing.exit_code == 1 and "cannot read" in missing.output
    assert "Traceback" not in missing.output
    untrained = runner.invoke(app, ["train-text", "--tagger-task", ""])
    assert untrained.exit_code == 1
    assert "need at least 20" in untrained.output
    wrong = runner.invoke(app, ["train-text", "--tagger-recipe", "sst2"])
    assert wrong.exit_code == 1 and "Traceback" not in wrong.output
    assert "recipe 'sst2' is a classifier recipe, not a tagger one" in wrong.output
