"""Classification and tagging metrics; entity spans follow conlleval's chunk rules exactly."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def accuracy(y_true: Any, y_pred: Any) -> float:
    """Share of equal labels (0.0 for no labels)."""
    if len(y_true) == 0:
        return 0.0
    return float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))


def confusion_matrix(y_true: Any, y_pred: Any, n_labels: int) -> np.ndarray:
    """Counts [true, predicted] as int64."""
    matrix = np.zeros((n_labels, n_labels), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)), 1)
    return matrix


def macro_f1(y_true: Any, y_pred: Any, n_labels: int) -> float:
    """Unweighted mean of per-class F1 over classes present in truth or prediction."""
    m = confusion_matrix(y_true, y_pred, n_labels)
    tp = np.diag(m).astype(float)
    support, predicted = m.sum(axis=1), m.sum(axis=0)
    present = (support + predicted) > 0
    if not present.any():
        return 0.0
    f1 = np.divide(2 * tp, support + predicted, out=np.zeros_like(tp), where=present)
    return float(f1[present].mean())


def token_accuracy(true_seqs: Sequence[Sequence[str]], pred_seqs: Sequence[Sequence[str]]) -> float:
    """Share of tokens whose tag is right, over all sequences."""
    total = correct = 0
    for t, p in zip(true_seqs, pred_seqs, strict=True):
        if len(t) != len(p):
            raise ValueError(f"sequence lengths differ: {len(t)} true tags, {len(p)} predicted")
        total += len(t)
        correct += sum(a == b for a, b in zip(t, p, strict=True))
    return correct / total if total else 0.0


def _split(tag: str) -> tuple[str, str]:
    if tag == "O" or "-" not in tag:
        return (tag if tag in ("O", "[", "]", ".") else "O"), ""
    prefix, kind = tag.split("-", 1)
    return prefix, kind


def _end_of_chunk(prev: str, tag: str, prev_type: str, kind: str) -> bool:
    # conlleval.pl endOfChunk, case for case.
    return (
        prev in ("E", "S", "]", "[")
        or (prev in ("B", "I") and tag in ("B", "S", "O"))
        or (prev not in ("O", ".") and prev_type != kind)
    )


def _start_of_chunk(prev: str, tag: str, prev_type: str, kind: str) -> bool:
    # conlleval.pl startOfChunk, case for case.
    return (
        tag in ("B", "S", "[", "]")
        or (prev in ("E", "S", "O") and tag in ("E", "I"))
        or (tag not in ("O", ".") and prev_type != kind)
    )


def entity_spans(tags: Sequence[str]) -> set[tuple[str, int, int]]:
    """Entities as (type, first token, last token) under conlleval's rules (BIO, IOB1, BIOES)."""
    spans: set[tuple[str, int, int]] = set()
    prev, prev_type, start = "O", "", -1
    for i, tag in enumerate([*tags, "O"]):
        cur, kind = _split(tag)
        if start >= 0 and _end_of_chunk(prev, cur, prev_type, kind):
            spans.add((prev_type, start, i - 1))
            start = -1
        if _start_of_chunk(prev, cur, prev_type, kind):
            start = i
        prev, prev_type = cur, kind
    return spans


@dataclass(frozen=True)
class EntityScores:
    """Micro precision/recall/F1 over exact (span, type) matches, and the same per type."""

    precision: float
    recall: float
    f1: float
    per_type: dict[str, dict[str, float]] = field(default_factory=dict)


def _prf(tp: int, n_pred: int, n_true: int) -> tuple[float, float, float]:
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_true if n_true else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def entity_f1(
    true_seqs: Sequence[Sequence[str]], pred_seqs: Sequence[Sequence[str]]
) -> EntityScores:
    """conlleval's scores: an entity counts only when its span and type both match."""
    counts: dict[str, list[int]] = {}  # type -> [tp, predicted, true]
    for t, p in zip(true_seqs, pred_seqs, strict=True):
        gold, pred = entity_spans(t), entity_spans(p)
        for kind, *_ in gold:
            counts.setdefault(kind, [0, 0, 0])[2] += 1
        for kind, *_ in pred:
            counts.setdefault(kind, [0, 0, 0])[1] += 1
        for kind, *_ in gold & pred:
            counts[kind][0] += 1
    tp, n_pred, n_true = (sum(c[i] for c in counts.values()) for i in range(3))
    precision, recall, f1 = _prf(tp, n_pred, n_true)
    per_type: dict[str, dict[str, float]] = {}
    for kind in sorted(counts):
        kp, kr, kf = _prf(*counts[kind])
        per_type[kind] = {
            "precision": kp,
            "recall": kr,
            "f1": kf,
            "support": float(counts[kind][2]),
        }
    return EntityScores(precision, recall, f1, per_type)
