"""A text classifier end to end: vocabulary, batching, training, prediction, save and load."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nlp.artifact import ArtifactError, cpu_state, load_artifact, load_state, save_artifact
from nlp.batching import length_batches, pad_ids
from nlp.device import autocast_context
from nlp.metrics import accuracy, confusion_matrix, macro_f1
from nlp.models.classifier import LSTMClassifier, LSTMClassifierConfig
from nlp.training import Batch, Callback, TextTrainConfig, TrainResult, fit_members, to_device
from nlp.vocab import PAD, UNK, UNK_ID, Vocab, VocabConfig, tokenize
from nlp.voting import mean_probabilities
from nlp.word_vectors import WordVectors, seeded_model

ARTIFACT_FORMAT = "seqcast-text-classifier/1"
POSITIVE_NAMES = ("1", "pos", "positive", "fresh")


@dataclass(frozen=True)
class ClassifierSpec:
    """Everything that defines a text classifier; documents keep their first ``max_tokens``.

    ``seeds``: members trained with seeds ``train.seed`` onwards, each with its share of
    ``train.max_minutes``, their class probabilities averaged; 1 is a single model.
    """

    model: LSTMClassifierConfig = field(default_factory=LSTMClassifierConfig)
    vocab: VocabConfig = field(default_factory=VocabConfig)
    train: TextTrainConfig = field(default_factory=TextTrainConfig)
    max_tokens: int = 400
    seeds: int = 1

    def __post_init__(self) -> None:
        if self.seeds < 1:
            raise ValueError(f"seeds must be >= 1, got {self.seeds}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClassifierSpec:
        return cls(
            model=LSTMClassifierConfig(**data["model"]),
            vocab=VocabConfig(**data["vocab"]),
            train=TextTrainConfig(**data["train"]),
            max_tokens=int(data["max_tokens"]),
            seeds=int(data.get("seeds", 1)),
        )


class TextClassifier:
    """Labels documents with an :class:`LSTMClassifier` over a vocabulary learned in ``fit``."""

    def __init__(self, spec: ClassifierSpec | None = None) -> None:
        self.spec = spec or ClassifierSpec()
        self.vocab: Vocab | None = None
        self.labels: list[str] = []
        self.members: list[LSTMClassifier] = []  # one per seed
        self.vector_words: Vocab | None = None  # rows of the frozen vector table, if any

    @property
    def model(self) -> LSTMClassifier | None:
        """The first member (the only one unless ``spec.seeds`` > 1); None before ``fit``."""
        return self.members[0] if self.members else None

    @property
    def positive_label(self) -> str | None:
        """The label whose probability is the sentiment score (binary models only)."""
        if len(self.labels) != 2:
            return None
        named = [lab for lab in self.labels if lab.lower() in POSITIVE_NAMES]
        return named[0] if named else self.labels[1]

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids per text, cut to ``max_tokens``; an empty text becomes one ``<unk>``."""
        if self.vocab is None:
            raise RuntimeError("the classifier is not fitted")
        lower, cap = self.spec.vocab.lower, self.spec.max_tokens
        return [self.vocab.encode(tokenize(t, lower)[:cap]) or [UNK_ID] for t in texts]

    def _encode_vectors(self, texts: Sequence[str]) -> list[list[int]] | None:
        if self.vector_words is None:
            return None
        cap = self.spec.max_tokens
        return [self.vector_words.encode(tokenize(t, True)[:cap]) or [UNK_ID] for t in texts]

    def _batches(
        self,
        ids: list[list[int]],
        labels: np.ndarray | None,
        shuffle: bool,
        seed: int = 0,
        vec: list[list[int]] | None = None,
    ) -> list[Batch]:
        batches = []
        for idx in length_batches([len(s) for s in ids], self.spec.train.batch_size, shuffle, seed):
            padded, lengths = pad_ids([ids[i] for i in idx])
            batch = {"ids": padded, "lengths": lengths, "order": torch.as_tensor(idx)}
            if vec is not None:
                batch["vec"], _ = pad_ids([vec[i] for i in idx])
            if labels is not None:
                batch["labels"] = torch.as_tensor(labels[idx], dtype=torch.long)
            batches.append(batch)
        return batches

    def _label_ids(self, labels: Sequence[str]) -> np.ndarray:
        index = {lab: i for i, lab in enumerate(self.labels)}
        unknown = sorted({lab for lab in labels if lab not in index})
        if unknown:
            raise ValueError(f"labels {unknown[:5]} were not in the training data {self.labels}")
        return np.array([index[lab] for lab in labels], dtype=np.int64)

    def fit(
        self,
        texts: Sequence[str],
        labels: Sequence[str],
        val_texts: Sequence[str],
        val_labels: Sequence[str],
        callbacks: Sequence[Callback] = (),
        vectors: WordVectors | None = None,
    ) -> TrainResult:
        """Learn the vocabulary and labels from the training part, train, keep the best epoch
        by validation accuracy. ``vectors``: a frozen word-vector table beside the learned
        embedding (all its words, seen in training or not); saved with the model."""
        if len(texts) != len(labels) or len(val_texts) != len(val_labels):
            raise ValueError("texts and labels must have the same length")
        if not len(texts) or not len(val_texts):
            raise ValueError("need training and validation documents")
        self.labels = sorted(set(labels))
        if len(self.labels) < 2:
            raise ValueError(f"need at least two labels to classify, got {self.labels}")
        vc = self.spec.vocab
        self.vocab = Vocab.build(
            (tokenize(t, vc.lower)[: self.spec.max_tokens] for t in texts), vc.min_freq, vc.max_size
        )
        self.vector_words = None if vectors is None else Vocab([PAD, UNK, *vectors.words])
        config = replace(
            self.spec.model,
            vocab_size=len(self.vocab),
            num_classes=len(self.labels),
            vector_vocab_size=0 if vectors is None else len(vectors.words) + 2,
            vector_dim=0 if vectors is None else vectors.dim,
        )
        self.spec = replace(self.spec, model=config)

        def build(seed: int) -> nn.Module:
            return seeded_model(lambda: LSTMClassifier(config), seed, vectors)

        train_ids, y = self.encode(texts), self._label_ids(labels)
        vec = self._encode_vectors(texts)
        val_batches = self._batches(
            self.encode(val_texts),
            self._label_ids(val_labels),
            False,
            vec=self._encode_vectors(val_texts),
        )
        truth = np.concatenate([b["labels"].numpy() for b in val_batches])

        def evaluate(model: nn.Module) -> dict[str, float]:
            probs, losses, n = self._probabilities(model, val_batches)
            pred = probs.argmax(1)
            return {
                "val_loss": losses / n,
                "val_score": accuracy(truth, pred),
                "val_macro_f1": macro_f1(truth, pred, len(self.labels)),
            }

        members, result = fit_members(
            build,
            lambda seed, epoch: self._batches(train_ids, y, True, seed * 100_003 + epoch, vec),
            evaluate,
            self.spec.train,
            self.spec.seeds,
            callbacks,
        )
        self.members = members  # type: ignore[assignment]
        if len(members) > 1:  # the ensemble's own validation score
            with torch.no_grad():
                result.best_score = accuracy(truth, self._mean_probabilities(val_batches).argmax(1))
        return result

    def _mean_probabilities(self, batches: list[Batch]) -> np.ndarray:
        """The members' mean class probabilities in batch order (one member's as they are)."""
        probs = [self._probabilities(m, batches)[0] for m in self.members]
        return probs[0] if len(probs) == 1 else mean_probabilities(probs)

    @staticmethod
    def _probabilities(model: nn.Module, batches: list[Batch]) -> tuple[np.ndarray, float, int]:
        """Class probabilities in batch order, plus summed loss and count where labels exist."""
        device = next(model.parameters()).device
        out, total, n = [], 0.0, 0
        for batch in batches:
            b = to_device(batch, device)
            logits = model(b["ids"], b["lengths"], b.get("vec")).float()
            out.append(torch.softmax(logits, -1).cpu().numpy())
            if "labels" in b:
                total += float(nn.functional.cross_entropy(logits, b["labels"], reduction="sum"))
                n += len(logits)
        return np.concatenate(out), total, max(n, 1)

    @torch.no_grad()
    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """[N, C] class probabilities in the order of ``self.labels``."""
        if self.model is None:
            raise RuntimeError("the classifier is not fitted")
        if not len(texts):
            return np.zeros((0, len(self.labels)))
        for member in self.members:
            member.eval()
        batches = self._batches(self.encode(texts), None, False, vec=self._encode_vectors(texts))
        device = next(self.model.parameters()).device
        with autocast_context(device):
            probs = self._mean_probabilities(batches)
        order = np.concatenate([b["order"].numpy() for b in batches])
        result = np.empty_like(probs)
        result[order] = probs
        return result.astype(np.float64)

    def predict(self, texts: Sequence[str]) -> list[str]:
        return [self.labels[i] for i in self.predict_proba(texts).argmax(1)]

    def evaluate(self, texts: Sequence[str], labels: Sequence[str]) -> dict[str, Any]:
        """Accuracy, macro F1 and the confusion matrix (rows true, columns predicted)."""
        truth = self._label_ids(labels)
        pred = self.predict_proba(texts).argmax(1)
        return {
            "accuracy": accuracy(truth, pred),
            "macro_f1": macro_f1(truth, pred, len(self.labels)),
            "confusion": confusion_matrix(truth, pred, len(self.labels)),
            "n": len(truth),
        }

    def save(self, path: str | Path) -> Path:
        """Weights, spec, vocabulary and labels as one ``weights_only``-safe file."""
        if self.model is None or self.vocab is None:
            raise RuntimeError("the classifier is not fitted")
        return save_artifact(
            path,
            ARTIFACT_FORMAT,
            {
                "spec": self.spec.to_dict(),
                "vocab": list(self.vocab.itos),
                "labels": list(self.labels),
                "vector_words": [] if self.vector_words is None else list(self.vector_words.itos),
                "state_dict": cpu_state(self.model),
                "member_state_dicts": [cpu_state(m) for m in self.members[1:]],
            },
        )

    @classmethod
    def load(cls, path: str | Path) -> TextClassifier:
        payload = load_artifact(path, ARTIFACT_FORMAT)
        clf = cls(ClassifierSpec.from_dict(payload["spec"]))
        clf.vocab = Vocab(payload["vocab"])
        clf.labels = list(payload["labels"])
        if payload.get("vector_words"):
            clf.vector_words = Vocab(payload["vector_words"])
        states = [payload["state_dict"], *payload.get("member_state_dicts", [])]
        if len(states) != clf.spec.seeds:
            raise ArtifactError(f"{path}: {len(states)} members, its spec says {clf.spec.seeds}")
        clf.members = [LSTMClassifier(clf.spec.model) for _ in states]
        for member, state in zip(clf.members, states, strict=True):
            load_state(member, state, path)
        return clf
