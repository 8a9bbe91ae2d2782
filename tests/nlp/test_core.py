"""nlp/ building blocks: vocabulary, batching and packing, CRF against brute force, metrics."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from nlp.batching import length_batches, pad_chars, pad_ids, sequence_mask
from nlp.crf import CRF
from nlp.metrics import accuracy, entity_f1, entity_spans, macro_f1, token_accuracy
from nlp.models import BiLSTMTagger, BiLSTMTaggerConfig, LSTMClassifier, LSTMClassifierConfig
from nlp.vocab import PAD, UNK, Vocab, case_feature, tokenize


def test_tokenizer_keeps_clitics_and_splits_punctuation() -> None:
    assert tokenize("It doesn't work, Bob's DOG!") == [
        "it", "doesn't", "work", ",", "bob's", "dog", "!"
    ]  # fmt: skip
    assert tokenize("it does n't , it 's") == ["it", "does", "n't", ",", "it", "'s"]
    assert tokenize("Mixed Case", lower=False) == ["Mixed", "Case"]


def test_vocab_specials_min_freq_and_max_size() -> None:
    docs = [["a", "b", "a"], ["a", "c", "b"], ["d"]]
    vocab = Vocab.build(docs, min_freq=2)
    assert vocab.itos == [PAD, UNK, "a", "b"]
    assert vocab.encode(["a", "c", "zzz"]) == [2, 1, 1]
    assert Vocab.build(docs, max_size=3).itos == [PAD, UNK, "a"]
    # Ties are broken alphabetically, so the vocabulary is the same whatever the input order.
    assert Vocab.build([["y", "x"]]).itos == Vocab.build([["x", "y"]]).itos
    with pytest.raises(ValueError):
        Vocab(["a", "b"])


def test_case_features() -> None:
    assert [case_feature(t) for t in ["word", "EU", "Peter", "1996", "A4", "iPhone", ","]] == [
        1, 2, 3, 4, 5, 6, 7
    ]  # fmt: skip


def test_length_batches_cover_every_item_once_with_similar_lengths() -> None:
    lengths = np.random.default_rng(0).integers(1, 60, size=1000)
    for shuffle in (False, True):
        batches = length_batches(lengths, 32, shuffle=shuffle, seed=3)
        flat = np.concatenate(batches)
        assert sorted(flat.tolist()) == list(range(1000))
        spread = np.mean([lengths[b].max() - lengths[b].min() for b in batches])
        assert spread < 10  # random batches would spread ~55
    assert [b.tolist() for b in length_batches(lengths, 32, True, 3)] == [
        b.tolist() for b in length_batches(lengths, 32, True, 3)
    ]


def test_padding_helpers() -> None:
    ids, lengths = pad_ids([[5, 6, 7], [8]])
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]] and lengths.tolist() == [3, 1]
    assert sequence_mask(lengths, 3).tolist() == [[True, True, True], [True, False, False]]
    chars = pad_chars([[[1, 2], [3]], [list(range(2, 50))]], max_chars=10)
    assert chars.shape == (2, 2, 10)
    assert chars[1, 0].tolist() == [2, 3, 4, 5, 6, 45, 46, 47, 48, 49]  # prefix and suffix kept


@pytest.mark.parametrize("pooling", ["max", "mean", "last"])
def test_classifier_packed_batch_equals_each_sequence_alone(pooling: str) -> None:
    torch.manual_seed(0)
    model = LSTMClassifier(LSTMClassifierConfig(vocab_size=50, pooling=pooling)).eval()  # type: ignore[arg-type]
    seqs = [[3, 4, 5, 6, 7, 8], [9, 10], [11, 12, 13]]
    ids, lengths = pad_ids(seqs)
    with torch.no_grad():
        batched = model(ids, lengths)
        alone = torch.cat([model(*pad_ids([s])) for s in seqs])
    torch.testing.assert_close(batched, alone, rtol=1e-5, atol=1e-6)


def test_tagger_emissions_ignore_padding() -> None:
    torch.manual_seed(0)
    config = BiLSTMTaggerConfig(vocab_size=40, char_vocab_size=20, num_tags=5, hidden_size=16)
    model = BiLSTMTagger(config).eval()
    words = [[3, 4, 5, 6], [7, 8]]
    chars = [[[2, 3], [4], [5, 6, 7], [8]], [[9, 10, 11, 12], [13]]]

    def batch(idx: list[int]) -> dict[str, torch.Tensor]:
        ids, lengths = pad_ids([words[i] for i in idx])
        return {
            "ids": ids,
            "lengths": lengths,
            "case": (ids > 0).long(),
            "chars": pad_chars([chars[i] for i in idx]),
        }

    with torch.no_grad():
        both = model(batch([0, 1]))
        short = model(batch([1]))
    torch.testing.assert_close(both[1, :2], short[0], rtol=1e-5, atol=1e-6)
    assert model.decode(batch([0, 1]))[1] == model.decode(batch([1]))[0]


@torch.no_grad()
def _brute_force(crf: CRF, em: torch.Tensor, n: int) -> tuple[float, list[int]]:
    """log Z and the best path of one sequence by enumerating every path."""
    scores = {}
    for path in itertools.product(range(crf.num_tags), repeat=n):
        s = crf.start[path[0]] + em[0, path[0]] + crf.end[path[-1]]
        for t in range(1, n):
            s = s + crf.transitions[path[t - 1], path[t]] + em[t, path[t]]
        scores[path] = float(s)
    log_z = float(torch.logsumexp(torch.tensor(list(scores.values())), 0))
    return log_z, list(max(scores, key=scores.__getitem__))


@pytest.mark.parametrize("seed", range(5))
@torch.no_grad()
def test_crf_partition_likelihood_and_viterbi_match_brute_force(seed: int) -> None:
    torch.manual_seed(seed)
    crf = CRF(3)
    with torch.no_grad():  # larger transitions than the init, so paths differ clearly
        crf.transitions.normal_(0, 1.0)
        crf.start.normal_(0, 1.0)
        crf.end.normal_(0, 1.0)
    lengths = torch.tensor([4, 1, 3])
    em = torch.randn(3, 4, 3)
    mask = sequence_mask(lengths, 4)
    tags = torch.randint(0, 3, (3, 4))
    log_z = crf.log_partition(em, mask)
    ll = crf.log_likelihood(em, tags, mask)
    decoded = crf.decode(em, mask)
    for b, n in enumerate(lengths.tolist()):
        s: torch.Tensor
        expected_z, expected_path = _brute_force(crf, em[b], n)
        assert float(log_z[b]) == pytest.approx(expected_z, abs=1e-4)
        gold = tags[b, :n].tolist()
        s = crf.start[gold[0]] + em[b, 0, gold[0]] + crf.end[gold[-1]]
        for t in range(1, n):
            s = s + crf.transitions[gold[t - 1], gold[t]] + em[b, t, gold[t]]
        assert float(ll[b]) == pytest.approx(float(s) - expected_z, abs=1e-4)
        assert decoded[b] == expected_path
    # The likelihood is a proper distribution's: never positive.
    assert (ll <= 1e-5).all()


def test_classification_metrics_by_hand() -> None:
    truth, pred = [0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 0]
    assert accuracy(truth, pred) == pytest.approx(4 / 6)
    # F1 per class: 0 -> P 1/2 R 1/2 = 0.5; 1 -> P 2/3 R 1 = 0.8; 2 -> P 1 R 1/2 = 2/3.
    assert macro_f1(truth, pred, 3) == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert token_accuracy([["A", "B"], ["C"]], [["A", "X"], ["C"]]) == pytest.approx(2 / 3)


def test_entity_spans_follow_conlleval() -> None:
    assert entity_spans(["B-PER", "I-PER", "O", "B-LOC"]) == {("PER", 0, 1), ("LOC", 3, 3)}
    # IOB1 / sloppy BIO: an I- after O starts an entity; a type change splits one.
    assert entity_spans(["O", "I-PER", "I-PER"]) == {("PER", 1, 2)}
    assert entity_spans(["B-PER", "I-LOC"]) == {("PER", 0, 0), ("LOC", 1, 1)}
    assert entity_spans(["B-ORG", "B-ORG"]) == {("ORG", 0, 0), ("ORG", 1, 1)}
    # BIOES.
    assert entity_spans(["S-PER", "B-ORG", "I-ORG", "E-ORG", "S-LOC", "S-LOC"]) == {
        ("PER", 0, 0), ("ORG", 1, 3), ("LOC", 4, 4), ("LOC", 5, 5)
    }  # fmt: skip
    assert entity_spans(["B-MISC", "E-MISC", "I-MISC"]) == {("MISC", 0, 1), ("MISC", 2, 2)}


def test_entity_f1_matches_hand_computed_conlleval_scores() -> None:
    truth = [["S-PER", "O", "B-ORG", "I-ORG", "E-ORG"], ["B-LOC", "E-LOC", "O"]]
    pred = [["S-PER", "O", "B-ORG", "E-ORG", "O"], ["B-LOC", "E-LOC", "S-MISC"]]
    scores = entity_f1(truth, pred)
    # gold 3 entities, predicted 4, correct 2 (PER and LOC; ORG has the wrong span).
    assert scores.precision == pytest.approx(2 / 4)
    assert scores.recall == pytest.approx(2 / 3)
    assert scores.f1 == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert scores.per_type["ORG"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1.0}
    assert scores.per_type["MISC"]["support"] == 0.0
    bio = entity_f1([["B-PER", "I-PER", "O"]], [["B-PER", "I-PER", "O"]])
    assert (bio.precision, bio.recall, bio.f1) == (1.0, 1.0, 1.0)
