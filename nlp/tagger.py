"""A sequence tagger end to end: vocabularies, batching, training, decoding, save and load."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nlp.artifact import ArtifactError, cpu_state, load_artifact, load_state, save_artifact
from nlp.batching import length_batches, pad_chars, pad_ids
from nlp.device import autocast_context
from nlp.metrics import entity_f1, token_accuracy
from nlp.models.tagger import BiLSTMTagger, BiLSTMTaggerConfig
from nlp.training import Batch, Callback, TextTrainConfig, TrainResult, fit_members, to_device
from nlp.vocab import PAD, UNK, UNK_ID, Vocab, VocabConfig, case_feature
from nlp.voting import vote_tags
from nlp.word_vectors import WordVectors, seeded_model

ARTIFACT_FORMAT = "seqcast-sequence-tagger/1"
_DIGITS = re.compile(r"\d")


@dataclass(frozen=True)
class TaggerSpec:
    """Everything that defines a tagger.

    ``word_dropout``: chance that a word seen once in training is replaced by ``<unk>`` in a
    training batch, so the model learns to tag unknown words from characters and case.
    ``seeds``: members trained with seeds ``train.seed`` onwards, each with its share of
    ``train.max_minutes``, voting per token (nlp/voting.py); 1 is a single model.
    """

    model: BiLSTMTaggerConfig = field(default_factory=BiLSTMTaggerConfig)
    vocab: VocabConfig = field(default_factory=lambda: VocabConfig(max_size=100_000))
    train: TextTrainConfig = field(
        default_factory=lambda: TextTrainConfig(max_epochs=20, batch_size=32, clip_norm=5.0)
    )
    word_dropout: float = 0.3
    normalize_digits: bool = True
    max_word_chars: int = 30
    seeds: int = 1

    def __post_init__(self) -> None:
        if self.seeds < 1:
            raise ValueError(f"seeds must be >= 1, got {self.seeds}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaggerSpec:
        return cls(
            model=BiLSTMTaggerConfig(**data["model"]),
            vocab=VocabConfig(**data["vocab"]),
            train=TextTrainConfig(**data["train"]),
            word_dropout=float(data["word_dropout"]),
            normalize_digits=bool(data["normalize_digits"]),
            max_word_chars=int(data["max_word_chars"]),
            seeds=int(data.get("seeds", 1)),
        )


@dataclass
class _Encoded:
    words: list[list[int]]
    chars: list[list[list[int]]]
    case: list[list[int]]
    tags: list[list[int]] | None
    vec: list[list[int]] | None = None


class SequenceTagger:
    """Tags tokens with a :class:`BiLSTMTagger`; entity F1 (BIO/BIOES) or token accuracy."""

    def __init__(self, spec: TaggerSpec | None = None) -> None:
        self.spec = spec or TaggerSpec()
        self.words: Vocab | None = None
        self.chars: Vocab | None = None
        self.tags: list[str] = []
        self.scheme = "none"
        self.members: list[BiLSTMTagger] = []  # one per seed
        self.vector_words: Vocab | None = None  # rows of the frozen vector table, if any
        self.vector_cased = False  # the table has a row per spelling (WordVectors.cased)

    @property
    def model(self) -> BiLSTMTagger | None:
        """The first member (the only one unless ``spec.seeds`` > 1); None before ``fit``."""
        return self.members[0] if self.members else None

    def _vector_form(self, token: str) -> str:
        known = self.vector_cased and self.vector_words is not None and token in self.vector_words
        return token if known else token.lower()

    def _word_form(self, token: str) -> str:
        form = token.lower() if self.spec.vocab.lower else token
        return _DIGITS.sub("0", form) if self.spec.normalize_digits else form

    def _encode(
        self, sentences: Sequence[Sequence[str]], tags: Sequence[Sequence[str]] | None
    ) -> _Encoded:
        if self.words is None or self.chars is None:
            raise RuntimeError("the tagger is not fitted")
        tag_index = {t: i for i, t in enumerate(self.tags)}
        tag_ids = None
        if tags is not None:
            # A validation tag the training data never had cannot be predicted; it only enters
            # the validation loss (as tag 0), while scores compare the tag strings.
            tag_ids = [[tag_index.get(t, 0) for t in seq] for seq in tags]
        return _Encoded(
            words=[self.words.encode([self._word_form(t) for t in s]) for s in sentences],
            chars=[[self.chars.encode(list(t)) for t in s] for s in sentences],
            case=[[case_feature(t) for t in s] for s in sentences],
            tags=tag_ids,
            vec=None
            if self.vector_words is None
            else [self.vector_words.encode([self._vector_form(t) for t in s]) for s in sentences],
        )

    def _batches(
        self, data: _Encoded, shuffle: bool, seed: int = 0, singletons: set[int] | None = None
    ) -> list[Batch]:
        rng = np.random.default_rng(seed)
        p = self.spec.word_dropout if singletons else 0.0
        batches = []
        lengths = [len(s) for s in data.words]
        for idx in length_batches(lengths, self.spec.train.batch_size, shuffle, seed):
            words = [data.words[i] for i in idx]
            if p > 0 and singletons:
                words = [
                    [UNK_ID if w in singletons and rng.random() < p else w for w in s]
                    for s in words
                ]
            ids, lens = pad_ids(words)
            case, _ = pad_ids([data.case[i] for i in idx])
            batch = {
                "ids": ids,
                "lengths": lens,
                "case": case,
                "chars": pad_chars([data.chars[i] for i in idx], self.spec.max_word_chars),
                "order": torch.as_tensor(idx),
            }
            if data.vec is not None:
                batch["vec"], _ = pad_ids([data.vec[i] for i in idx])
            if data.tags is not None:
                batch["tags"], _ = pad_ids([data.tags[i] for i in idx])
            batches.append(batch)
        return batches

    def fit(
        self,
        sentences: Sequence[Sequence[str]],
        tags: Sequence[Sequence[str]],
        val_sentences: Sequence[Sequence[str]],
        val_tags: Sequence[Sequence[str]],
        scheme: str | None = None,
        callbacks: Sequence[Callback] = (),
        vectors: WordVectors | None = None,
    ) -> TrainResult:
        """Learn vocabularies and tags from the training part, train, keep the best epoch by
        validation entity F1 (``scheme`` BIO/BIOES) or token accuracy (``none``: POS).

        ``vectors``: a frozen table of word vectors beside the learned embeddings (all of its
        words, so words the training data lacks are covered); saved with the model.
        """
        if not len(sentences) or not len(val_sentences):
            raise ValueError("need training and validation sentences")
        for s, t in zip([*sentences, *val_sentences], [*tags, *val_tags], strict=True):
            if len(s) != len(t) or not s:
                raise ValueError("every sentence needs one tag per token and at least one token")
        self.tags = sorted({t for seq in tags for t in seq})
        self.scheme = scheme or _guess_scheme(self.tags)
        vc = self.spec.vocab
        counts = Counter(self._word_form(t) for s in sentences for t in s)
        self.words = Vocab.build(
            ([self._word_form(t) for t in s] for s in sentences), vc.min_freq, vc.max_size
        )
        self.chars = Vocab.build((list(t) for s in sentences for t in s), 1, 1000)
        self.vector_words = None if vectors is None else Vocab([PAD, UNK, *vectors.words])
        self.vector_cased = vectors is not None and vectors.cased
        config = replace(
            self.spec.model,
            vocab_size=len(self.words),
            char_vocab_size=len(self.chars),
            num_tags=len(self.tags),
            vector_vocab_size=0 if vectors is None else len(vectors.words) + 2,
            vector_dim=0 if vectors is None else vectors.dim,
        )
        self.spec = replace(self.spec, model=config)

        def build(seed: int) -> nn.Module:
            return seeded_model(lambda: BiLSTMTagger(config), seed, vectors)

        train = self._encode(sentences, tags)
        singletons = {self.words.stoi[w] for w, c in counts.items() if c == 1 and w in self.words}
        val_batches = self._batches(self._encode(val_sentences, val_tags), False)
        truth = [list(t) for t in val_tags]

        def evaluate(model: nn.Module) -> dict[str, float]:
            pred, loss = self._decode(model, val_batches, len(val_sentences), with_loss=True)
            return {"val_loss": loss, **self._scores(truth, pred, prefix="val_")}

        members, result = fit_members(
            build,
            lambda seed, epoch: self._batches(train, True, seed * 100_003 + epoch, singletons),
            evaluate,
            self.spec.train,
            self.spec.seeds,
            callbacks,
        )
        self.members = members  # type: ignore[assignment]
        if len(members) > 1:  # the ensemble's own validation score
            with torch.no_grad():
                voted = self._vote(val_batches, len(val_sentences))
            result.best_score = self._scores(truth, voted, prefix="val_")["val_score"]
        return result

    def _vote(self, batches: list[Batch], n: int) -> list[list[str]]:
        """Each member's tags, then the per-token vote (a single member's tags as they are)."""
        tagged = [self._decode(m, batches, n)[0] for m in self.members]
        return tagged[0] if len(tagged) == 1 else vote_tags(tagged)

    def _scores(
        self, truth: list[list[str]], pred: list[list[str]], prefix: str
    ) -> dict[str, float]:
        out = {f"{prefix}token_accuracy": token_accuracy(truth, pred)}
        if self.scheme == "none":
            out[f"{prefix}score"] = out[f"{prefix}token_accuracy"]
            return out
        ent = entity_f1(truth, pred)
        out.update({f"{prefix}precision": ent.precision, f"{prefix}recall": ent.recall})
        out[f"{prefix}f1"] = out[f"{prefix}score"] = ent.f1
        return out

    def _decode(
        self, model: nn.Module, batches: list[Batch], n: int, with_loss: bool = False
    ) -> tuple[list[list[str]], float]:
        device = next(model.parameters()).device
        out: list[list[str]] = [[] for _ in range(n)]
        total = 0.0
        for batch in batches:
            b = to_device(batch, device)
            for i, path in zip(b["order"].tolist(), model.decode(b), strict=True):  # type: ignore[operator]
                out[i] = [self.tags[k] for k in path]
            if with_loss:
                total += float(model.loss(b)) * len(b["lengths"])  # type: ignore[operator]
        return out, total / max(n, 1)

    @torch.no_grad()
    def predict(self, sentences: Sequence[Sequence[str]]) -> list[list[str]]:
        """One tag per token of each sentence (an empty sentence gets no tags)."""
        if self.model is None:
            raise RuntimeError("the tagger is not fitted")
        keep = [i for i, s in enumerate(sentences) if len(s)]
        result: list[list[str]] = [[] for _ in sentences]
        if not keep:
            return result
        for member in self.members:
            member.eval()
        batches = self._batches(self._encode([sentences[i] for i in keep], None), False)
        device = next(self.model.parameters()).device
        with autocast_context(device):
            tagged = self._vote(batches, len(keep))
        for i, tags in zip(keep, tagged, strict=True):
            result[i] = tags
        return result

    def evaluate(
        self, sentences: Sequence[Sequence[str]], tags: Sequence[Sequence[str]]
    ) -> dict[str, Any]:
        """Token accuracy; with entities also conlleval precision, recall, F1 and per type."""
        return self.score(tags, self.predict(sentences))

    def score(
        self, tags: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]
    ) -> dict[str, Any]:
        """:meth:`evaluate`'s scores of given predictions (an ensemble's vote, say)."""
        truth, pred = [list(t) for t in tags], [list(p) for p in predicted]
        out: dict[str, Any] = self._scores(truth, pred, prefix="")
        if self.scheme != "none":
            out["per_type"] = entity_f1(truth, pred).per_type
        out["n_sentences"] = len(truth)
        out["n_tokens"] = sum(len(t) for t in truth)
        return out

    def save(self, path: str | Path) -> Path:
        if self.model is None or self.words is None or self.chars is None:
            raise RuntimeError("the tagger is not fitted")
        return save_artifact(
            path,
            ARTIFACT_FORMAT,
            {
                "spec": self.spec.to_dict(),
                "words": list(self.words.itos),
                "chars": list(self.chars.itos),
                "tags": list(self.tags),
                "scheme": self.scheme,
                "vector_words": [] if self.vector_words is None else list(self.vector_words.itos),
                "vector_cased": self.vector_cased,
                "state_dict": cpu_state(self.model),
                "member_state_dicts": [cpu_state(m) for m in self.members[1:]],
            },
        )

    @classmethod
    def load(cls, path: str | Path) -> SequenceTagger:
        payload = load_artifact(path, ARTIFACT_FORMAT)
        tagger = cls(TaggerSpec.from_dict(payload["spec"]))
        tagger.words, tagger.chars = Vocab(payload["words"]), Vocab(payload["chars"])
        tagger.tags, tagger.scheme = list(payload["tags"]), str(payload["scheme"])
        if payload.get("vector_words"):
            tagger.vector_words = Vocab(payload["vector_words"])
            tagger.vector_cased = bool(payload.get("vector_cased", False))
        states = [payload["state_dict"], *payload.get("member_state_dicts", [])]
        if len(states) != tagger.spec.seeds:
            raise ArtifactError(f"{path}: {len(states)} members, its spec says {tagger.spec.seeds}")
        tagger.members = [BiLSTMTagger(tagger.spec.model) for _ in states]
        for member, state in zip(tagger.members, states, strict=True):
            load_state(member, state, path)
        return tagger


def _guess_scheme(tags: Sequence[str]) -> str:
    prefixes = {t.split("-", 1)[0] for t in tags if "-" in t}
    if not prefixes or not prefixes <= {"B", "I", "E", "S"}:
        return "none"
    return "BIOES" if prefixes & {"E", "S"} else "BIO"
