"""Ensembles of text models trained with different seeds: per-token votes, mean probabilities."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np


def vote_tags(predictions: Sequence[Sequence[Sequence[str]]]) -> list[list[str]]:
    """Per-token majority over members' tag sequences; a tie goes to the earliest member.

    ``predictions[m][i][t]``: member m's tag for token t of sentence i.
    """
    if not predictions:
        raise ValueError("need at least one member's predictions")
    n = len(predictions[0])
    if any(len(p) != n for p in predictions):
        raise ValueError("every member must tag the same sentences")
    out: list[list[str]] = []
    for i in range(n):
        columns = zip(*(p[i] for p in predictions), strict=True)
        sentence = []
        for column in columns:
            counts = Counter(column)
            top = max(counts.values())
            sentence.append(next(t for t in column if counts[t] == top))
        out.append(sentence)
    return out


def mean_probabilities(probabilities: Sequence[np.ndarray]) -> np.ndarray:
    """[N, C] mean of the members' class probabilities (same labels, same order)."""
    if not probabilities:
        raise ValueError("need at least one member's probabilities")
    return np.mean(np.stack(probabilities), axis=0)
