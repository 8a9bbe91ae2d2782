"""Tokenizer and vocabularies learned from training text (``<pad>`` = 0, ``<unk>`` = 1)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1

# Clitics ("n't", "'s") stay whole; other punctuation is one token per character.
_APOS = "'\u2019"
_TOKEN_RE = re.compile(rf"n't|[{_APOS}]\w+|\w+(?:[{_APOS}]\w+)*|[^\w\s]", re.UNICODE)


def tokenize(text: str, lower: bool = True) -> list[str]:
    """Split text into word, clitic and punctuation tokens."""
    tokens = _TOKEN_RE.findall(text)
    return [t.lower() for t in tokens] if lower else tokens


@dataclass(frozen=True)
class VocabConfig:
    """How a vocabulary is learned: rarer tokens than ``min_freq`` map to ``<unk>``."""

    min_freq: int = 1
    max_size: int | None = 50_000
    lower: bool = True

    def __post_init__(self) -> None:
        if self.min_freq < 1:
            raise ValueError(f"min_freq must be >= 1, got {self.min_freq}")
        if self.max_size is not None and self.max_size < 3:
            raise ValueError(
                f"max_size must be >= 3 (two specials and a token), got {self.max_size}"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Vocab:
    """A token <-> id mapping; ids 0 and 1 are ``<pad>`` and ``<unk>``."""

    def __init__(self, itos: Sequence[str]) -> None:
        if list(itos[:2]) != [PAD, UNK]:
            raise ValueError(f"a vocabulary starts with {PAD!r}, {UNK!r}; got {list(itos[:2])}")
        self.itos = list(itos)
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise ValueError("a vocabulary cannot hold the same token twice")

    @classmethod
    def build(
        cls, sequences: Iterable[Sequence[str]], min_freq: int = 1, max_size: int | None = None
    ) -> Vocab:
        """Most frequent tokens first (ties alphabetical, so the result is deterministic)."""
        counts: Counter[str] = Counter()
        for seq in sequences:
            counts.update(seq)
        counts.pop(PAD, None)
        counts.pop(UNK, None)
        ranked = sorted(
            (t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t)
        )
        if max_size is not None:
            ranked = ranked[: max_size - 2]
        return cls([PAD, UNK, *ranked])

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def encode(self, tokens: Sequence[str]) -> list[int]:
        get = self.stoi.get
        return [get(t, UNK_ID) for t in tokens]

    def decode(self, ids: Sequence[int]) -> list[str]:
        return [self.itos[i] for i in ids]


def case_feature(token: str) -> int:
    """A small id for a token's shape, so a lowercased word vocabulary keeps case information.

    0 pad, 1 all lower, 2 all upper, 3 initial capital, 4 numeric, 5 contains a digit,
    6 mixed case, 7 other (punctuation).
    """
    if token.isdigit():
        return 4
    if any(c.isdigit() for c in token):
        return 5
    if not any(c.isalpha() for c in token):
        return 7
    if token.islower():
        return 1
    if token.isupper():
        return 2
    if token[0].isupper() and (len(token) == 1 or token[1:].islower()):
        return 3
    return 6


N_CASE_FEATURES = 8
