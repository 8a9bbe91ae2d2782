"""Batches of similar length, padded to the longest member (packing then skips the padding)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from nlp.vocab import PAD_ID


def length_batches(
    lengths: Sequence[int], batch_size: int, shuffle: bool = False, seed: int = 0
) -> list[np.ndarray]:
    """Index batches grouped by length.

    Unshuffled: sorted by length (deterministic, for evaluation). Shuffled: items are shuffled,
    sorted by length within pools of 50 batches, and the batch order is shuffled, so each epoch
    sees different neighbours while padding stays small.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    lengths_arr = np.asarray(lengths)
    if not shuffle:
        order = np.argsort(lengths_arr, kind="stable")
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lengths_arr))
    pool = batch_size * 50
    batches = []
    for i in range(0, len(order), pool):
        chunk = order[i : i + pool]
        chunk = chunk[np.argsort(lengths_arr[chunk], kind="stable")]
        batches += [chunk[j : j + batch_size] for j in range(0, len(chunk), batch_size)]
    return [batches[k] for k in rng.permutation(len(batches))]


def pad_ids(sequences: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad id sequences to ``[B, T]`` with ``<pad>``; return (ids, lengths on CPU)."""
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)
    if (lengths < 1).any():
        raise ValueError("every sequence needs at least one token")
    ids = torch.full((len(sequences), int(lengths.max())), PAD_ID, dtype=torch.long)
    for i, seq in enumerate(sequences):
        ids[i, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
    return ids, lengths


def pad_chars(words: Sequence[Sequence[Sequence[int]]], max_chars: int = 30) -> torch.Tensor:
    """Character ids ``[B, T, C]`` for sequences of words; words longer than ``max_chars`` keep
    their first and last characters (affixes carry the signal)."""
    longest_seq = max(len(s) for s in words)
    longest_word = min(max((len(w) for s in words for w in s), default=1), max_chars)
    out = torch.full((len(words), longest_seq, max(longest_word, 1)), PAD_ID, dtype=torch.long)
    half = max_chars // 2
    for i, seq in enumerate(words):
        for j, word in enumerate(seq):
            chars = word if len(word) <= max_chars else [*word[:half], *word[-(max_chars - half) :]]
            out[i, j, : len(chars)] = torch.as_tensor(chars, dtype=torch.long)
    return out


def sequence_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """``[B, T]`` True on real tokens."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]
