"""Seed ensembles inside one text model (``spec.seeds``): each member is exactly the single model
trained with its seed, the ensemble votes (tagger) or averages (classifier) them, and the
artifact keeps every member."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from nlp.artifact import ArtifactError
from nlp.classifier import ClassifierSpec, TextClassifier
from nlp.models import BiLSTMTaggerConfig, LSTMClassifierConfig
from nlp.readers import read_conllu
from nlp.tagger import SequenceTagger, TaggerSpec
from nlp.training import TextTrainConfig
from nlp.voting import mean_probabilities, vote_tags
from tests.support import SHARED_DATA


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _reviews() -> tuple[list[str], list[str]]:
    rng = random.Random(0)
    words = ["good", "great", "fine", "bad", "awful", "poor", "film", "plot", "the", "a", "not"]
    texts = [" ".join(rng.choices(words, k=rng.randint(2, 9))) for _ in range(260)]
    good = [sum(w in t.split() for w in words[:3]) for t in texts]
    bad = [sum(w in t.split() for w in words[3:6]) for t in texts]
    return texts, ["pos" if g >= b else "neg" for g, b in zip(good, bad, strict=True)]


def _classifier_spec(seeds: int, seed: int = 0) -> ClassifierSpec:
    return ClassifierSpec(
        model=LSTMClassifierConfig(embedding_dim=16, hidden_size=16, num_layers=1),
        train=TextTrainConfig(max_epochs=3, batch_size=32, learning_rate=4e-3, seed=seed),
        seeds=seeds,
    )


def test_classifier_ensemble_is_the_mean_of_its_seeds_and_round_trips(tmp_path: Path) -> None:
    texts, labels = _reviews()
    train, val, test = (texts[:180], labels[:180]), (texts[180:220], labels[180:220]), texts[220:]
    seen: list[tuple[int, float]] = []
    ensemble = TextClassifier(_classifier_spec(3, seed=5))
    result = ensemble.fit(*train, *val, [lambda e, m: seen.append((e, m["member"]))])
    singles = []
    for seed in (5, 6, 7):
        clf = TextClassifier(_classifier_spec(1, seed=seed))
        clf.fit(*train, *val)
        singles.append(clf)
    expected = mean_probabilities([c.predict_proba(test) for c in singles])
    np.testing.assert_allclose(ensemble.predict_proba(test), expected, rtol=1e-6, atol=1e-7)
    single = singles[0].predict_proba(test)
    assert not np.allclose(ensemble.predict_proba(test), single)  # three members, not one
    # One history: the members' epochs numbered on, each naming its member.
    assert [int(h["epoch"]) for h in result.history] == list(range(1, 10))
    assert [int(h["member"]) for h in result.history] == [0] * 3 + [1] * 3 + [2] * 3
    assert [e for e, _ in seen] == list(range(1, 10))  # callbacks see the same numbering
    assert len(result.members) == 3
    assert result.best_score == ensemble.evaluate(*val)["accuracy"]
    ensemble.save(tmp_path / "clf.pt")
    loaded = TextClassifier.load(tmp_path / "clf.pt")
    np.testing.assert_array_equal(loaded.predict_proba(test), ensemble.predict_proba(test))
    # An artifact whose members do not match its spec is refused.
    payload = torch.load(tmp_path / "clf.pt", weights_only=True)
    payload["member_state_dicts"] = payload["member_state_dicts"][:1]
    torch.save(payload, tmp_path / "short.pt")
    with pytest.raises(ArtifactError, match="2 members, its spec says 3"):
        TextClassifier.load(tmp_path / "short.pt")


def test_one_seed_is_the_single_model_as_before(tmp_path: Path) -> None:
    texts, labels = _reviews()
    a, b = TextClassifier(_classifier_spec(1)), TextClassifier(_classifier_spec(1))
    ra = a.fit(texts[:180], labels[:180], texts[180:], labels[180:])
    rb = b.fit(texts[:180], labels[:180], texts[180:], labels[180:])
    seconds = [h["seconds"] for h in ra.history]
    assert ra.history == [{**h, "seconds": t} for h, t in zip(rb.history, seconds, strict=True)]
    assert ra.members == [] and "member" not in ra.history[0]
    a.save(tmp_path / "one.pt")
    assert "member_state_dicts" in torch.load(tmp_path / "one.pt", weights_only=True)
    # An artifact from before seed ensembles (no member list, no seeds in its spec) loads.
    payload = torch.load(tmp_path / "one.pt", weights_only=True)
    del payload["member_state_dicts"], payload["spec"]["seeds"]
    torch.save(payload, tmp_path / "old.pt")
    old = TextClassifier.load(tmp_path / "old.pt")
    np.testing.assert_array_equal(old.predict_proba(texts[180:]), a.predict_proba(texts[180:]))
    with pytest.raises(ValueError, match="seeds must be >= 1"):
        replace(_classifier_spec(1), seeds=0)


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")
def test_tagger_ensemble_is_the_vote_of_its_seeds_on_real_treebank(tmp_path: Path) -> None:
    sentences = read_conllu(SHARED_DATA / "ud_ewt" / "en_ewt-ud-dev.conllu").records[:260]
    train, val, test = sentences[:180], sentences[180:220], sentences[220:]

    def spec(seeds: int, seed: int) -> TaggerSpec:
        return TaggerSpec(
            model=BiLSTMTaggerConfig(embedding_dim=16, hidden_size=16, char_channels=8),
            train=TextTrainConfig(max_epochs=2, batch_size=16, seed=seed),
            seeds=seeds,
        )

    def fit(tagger: SequenceTagger) -> SequenceTagger:
        tagger.fit([s.tokens for s in train], [s.tags for s in train],
                   [s.tokens for s in val], [s.tags for s in val])  # fmt: skip
        return tagger

    ensemble = fit(SequenceTagger(spec(3, 0)))
    singles = [fit(SequenceTagger(spec(1, seed))) for seed in range(3)]
    tokens = [s.tokens for s in test]
    voted = vote_tags([t.predict(tokens) for t in singles])
    assert ensemble.predict(tokens) == voted
    assert voted != singles[0].predict(tokens)  # the vote changed some tags
    ensemble.save(tmp_path / "tagger.pt")
    assert SequenceTagger.load(tmp_path / "tagger.pt").predict(tokens) == voted
