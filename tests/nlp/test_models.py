"""Text models learn on small slices of real data, save and load safely, train reproducibly."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from nlp.artifact import ArtifactError
from nlp.classifier import ClassifierSpec, TextClassifier
from nlp.models import BiLSTMTaggerConfig, LSTMClassifierConfig
from nlp.readers import read_conll, read_conllu, read_labelled
from nlp.tagger import SequenceTagger, TaggerSpec
from nlp.training import TextTrainConfig
from tests.support import SHARED_DATA

SHARED = SHARED_DATA
needs_shared = pytest.mark.skipif(
    not SHARED.exists(), reason=f"{SHARED} (public evaluation data) is absent"
)


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """One intra-op thread: on a shared 2-core machine, waiting OpenMP threads cost more than
    they bring (and CI's machine is shared by the whole suite)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _sst2_slice(tmp_path: Path, n: int = 2500) -> tuple[list[str], list[str]]:
    lines = (SHARED / "sst2" / "train.tsv").read_text().splitlines()[: n + 1]
    path = tmp_path / "sst2-slice.tsv"
    path.write_text("\n".join(lines) + "\n")
    records = read_labelled(path).records
    return [r.text for r in records], [r.label or "" for r in records]


def _small_classifier(epochs: int = 4, seed: int = 0) -> TextClassifier:
    return TextClassifier(
        ClassifierSpec(
            model=LSTMClassifierConfig(embedding_dim=48, hidden_size=48, num_layers=1),
            train=TextTrainConfig(
                max_epochs=epochs, batch_size=32, learning_rate=4e-3, patience=epochs, seed=seed
            ),
        )
    )


@needs_shared
@pytest.mark.slow
def test_classifier_learns_sst2_slice_and_round_trips(tmp_path: Path) -> None:
    texts, labels = _sst2_slice(tmp_path)
    clf = _small_classifier()
    seen: list[int] = []
    result = clf.fit(texts[:2000], labels[:2000], texts[2000:], labels[2000:], [
        lambda epoch, metrics: seen.append(epoch)
    ])  # fmt: skip
    assert seen == list(range(1, len(result.history) + 1))
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < losses[0] * 0.8, result.history
    scores = clf.evaluate(texts[2000:], labels[2000:])
    majority = max(labels[2000:].count(c) for c in set(labels)) / len(labels[2000:])
    assert scores["accuracy"] > majority + 0.08, (scores, majority)
    assert scores["confusion"].sum() == 500
    # Pre-clip norms are recorded per step, one per batch.
    assert len(result.grad_norms) == sum(-(-2000 // 32) for _ in result.history)
    assert clf.positive_label == "1"

    path = clf.save(tmp_path / "clf.pt")
    loaded = TextClassifier.load(path)
    torch.testing.assert_close(
        torch.tensor(loaded.predict_proba(texts[2000:])),
        torch.tensor(clf.predict_proba(texts[2000:])),
    )
    assert loaded.predict(["", "an utterly unseen qwzx token"])  # empty and unknown still score


def test_training_is_seeded_and_restores_the_best_epoch() -> None:
    rng = random.Random(0)
    words = ["good", "great", "fine", "bad", "awful", "poor", "film", "plot", "the", "a"]
    texts = [" ".join(rng.choices(words, k=rng.randint(2, 8))) for _ in range(300)]
    labels = [
        "pos" if sum(w in t.split() for w in words[:3]) >= sum(w in t.split() for w in words[3:6])
        else "neg"
        for t in texts
    ]  # fmt: skip
    runs = []
    for _ in range(2):
        clf = _small_classifier(epochs=5, seed=7)
        result = clf.fit(texts[:240], labels[:240], texts[240:], labels[240:])
        runs.append((result, clf))
    (a, clf_a), (b, _) = runs
    assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]
    best = max(a.history, key=lambda h: h["val_score"])
    assert a.best_epoch == int(best["epoch"])
    assert clf_a.evaluate(texts[240:], labels[240:])["accuracy"] == pytest.approx(best["val_score"])
    assert best["val_score"] > 0.8


def test_artifact_refuses_pickled_code_and_other_formats(tmp_path: Path) -> None:
    bad = tmp_path / "evil.pt"
    torch.save({"format": "seqcast-text-classifier/1", "obj": Path("x")}, bad)
    with pytest.raises(ArtifactError, match="not a loadable"):
        TextClassifier.load(bad)
    other = tmp_path / "other.pt"
    torch.save({"format": "something-else"}, other)
    with pytest.raises(ArtifactError, match="expected format"):
        SequenceTagger.load(other)


def _tagger(use_crf: bool, epochs: int) -> SequenceTagger:
    return SequenceTagger(
        TaggerSpec(
            model=BiLSTMTaggerConfig(
                embedding_dim=50, hidden_size=64, char_channels=32, use_crf=use_crf
            ),
            train=TextTrainConfig(max_epochs=epochs, batch_size=32, patience=epochs),
        )
    )


@needs_shared
@pytest.mark.slow
def test_crf_tagger_learns_conll_entities_and_round_trips(tmp_path: Path) -> None:
    train = read_conll(SHARED / "conll2003" / "eng.train").records[:1500]
    dev = read_conll(SHARED / "conll2003" / "eng.testa").records[:400]
    tagger = _tagger(use_crf=True, epochs=3)
    result = tagger.fit(
        [s.tokens for s in train], [s.tags for s in train], [s.tokens for s in dev],
        [s.tags for s in dev],
    )  # fmt: skip
    assert tagger.scheme == "BIOES"
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    scores = tagger.evaluate([s.tokens for s in dev], [s.tags for s in dev])
    assert scores["f1"] > 0.4, scores
    assert set(scores["per_type"]) == {"LOC", "MISC", "ORG", "PER"}
    loaded = SequenceTagger.load(tagger.save(tmp_path / "tagger.pt"))
    sentences = [s.tokens for s in dev[:50]]
    assert loaded.predict(sentences) == tagger.predict(sentences)
    assert loaded.predict([[], ["Hello"]])[0] == []


@needs_shared
@pytest.mark.slow
def test_pos_tagger_tags_unseen_words_from_their_characters() -> None:
    sentences = read_conllu(SHARED / "ud_ewt" / "en_ewt-ud-dev.conllu").records
    train, held = sentences[:1500], sentences[1500:]
    tagger = _tagger(use_crf=False, epochs=6)
    tagger.fit(
        [s.tokens for s in train], [s.tags for s in train], [s.tokens for s in held],
        [s.tags for s in held],
    )  # fmt: skip
    assert tagger.evaluate([s.tokens for s in held], [s.tags for s in held])["score"] > 0.7
    assert tagger.words is not None
    pred = tagger.predict([s.tokens for s in held])
    unseen = [
        (tag, p)
        for s, tags in zip(held, pred, strict=True)
        for tok, tag, p in zip(s.tokens, s.tags, tags, strict=True)
        if tagger._word_form(tok) not in tagger.words
    ]
    majority = max(sum(t == c for t, _ in unseen) for c in {t for t, _ in unseen}) / len(unseen)
    oov_accuracy = sum(t == p for t, p in unseen) / len(unseen)
    assert len(unseen) > 300
    assert oov_accuracy > majority + 0.1, (oov_accuracy, majority)
