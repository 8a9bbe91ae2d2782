"""Sliding windows as index arithmetic over one resident copy of the panel.

A window is identified by one integer: the position in the concatenated values array where its
input begins. Inputs are ``values[s : s + window]`` and targets
``values[s + window : s + window + horizon]``. Nothing is copied until a batch is gathered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from forecasting.panel import Panel, Split

# An epoch drawing at most this share of the windows samples them without a permutation.
SPARSE_EPOCH = 0.25


@dataclass(frozen=True)
class WindowSpec:
    """Input length and forecast horizon, in grid steps."""

    window: int
    horizon: int

    @property
    def span(self) -> int:
        return self.window + self.horizon


def _valid_run_starts(valid: np.ndarray, span: int) -> np.ndarray:
    """Boolean per start position: are all ``span`` points from there valid? O(n) via cumsum."""
    bad = np.concatenate([[0], np.cumsum(~valid, dtype=np.int64)])
    n_starts = valid.size - span + 1
    if n_starts <= 0:
        return np.zeros(0, dtype=bool)
    return (bad[span : span + n_starts] - bad[:n_starts]) == 0


def _target_range(panel: Panel, split: Split, spec: WindowSpec, part: str, i: int) -> range:
    """Start positions (within series ``i``) whose targets lie in ``part``, gaps ignored."""
    n = int(panel.lengths[i])
    lo_target = {"train": 0, "val": int(split.val_start[i]), "test": int(split.test_start[i])}
    hi_target = {"train": int(split.val_start[i]), "val": int(split.test_start[i]), "test": n}
    # Target block [t + window, t + span) must lie within [lo_target, hi_target).
    return range(max(0, lo_target[part] - spec.window), hi_target[part] - spec.span + 1)


def _series_starts(
    panel: Panel, split: Split, spec: WindowSpec, part: str, i: int
) -> tuple[np.ndarray, int]:
    """Global start positions of series ``i``'s valid windows in ``part``, and the skipped."""
    o, n = int(panel.offsets[i]), int(panel.lengths[i])
    wanted = _target_range(panel, split, spec, part, i)
    t_lo, t_hi = wanted.start, wanted.stop - 1
    if t_hi < t_lo:
        return np.zeros(0, np.int64), 0
    valid = ~np.isnan(panel.values[o : o + n])
    ok = _valid_run_starts(valid, spec.span)[t_lo : t_hi + 1]
    positions = np.arange(t_lo, t_hi + 1, dtype=np.int64)
    return o + positions[ok], int((~ok).sum())


def window_starts(
    panel: Panel, split: Split, spec: WindowSpec, part: str
) -> tuple[np.ndarray, np.ndarray, int]:
    """Global start indices of every fully valid window whose targets lie in ``part``.

    Args:
        part: ``"train"``, ``"val"`` or ``"test"`` (targets in that chronological part).

    Returns:
        (starts [K] int64, series index of each [K] int64, windows skipped for missing points).
    """
    all_starts: list[np.ndarray] = []
    all_series: list[np.ndarray] = []
    skipped = 0
    for i in range(len(panel.series_ids)):
        starts, n_skipped = _series_starts(panel, split, spec, part, i)
        skipped += n_skipped
        all_starts.append(starts)
        all_series.append(np.full(starts.size, i, dtype=np.int64))
    if not all_starts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), skipped
    return np.concatenate(all_starts), np.concatenate(all_series), skipped


class WindowIndex:
    """Every valid window of one split, stored as runs of consecutive start positions.

    A series without gaps is one run, so the index takes O(series + gaps) memory instead of
    one int64 per window: for ten million windows that is a few kilobytes, not 80 MB.
    Window ``k`` (in the order :func:`window_starts` lists them: series by series, oldest
    first) starts at ``run_start[r] + k - run_first[r]`` where ``r`` is the run holding ``k``.
    Indexing with a slice or an int64 tensor of window numbers returns their start positions.
    """

    def __init__(self, run_start: torch.Tensor, run_length: torch.Tensor) -> None:
        self.run_start = run_start.to(torch.int64)  # [R] global position of each run's first
        lengths = run_length.to(device=run_start.device, dtype=torch.int64)
        # run_first[r] = number of windows before run r; run_first[-1] = total.
        self.run_first = torch.cat([lengths.new_zeros(1), torch.cumsum(lengths, 0)])
        self._len = int(self.run_first[-1])

    @classmethod
    def from_starts(cls, starts: np.ndarray) -> WindowIndex:
        """Runs of an ascending array of start positions (consecutive ones merge)."""
        starts = np.asarray(starts, dtype=np.int64)
        if starts.size == 0:
            return cls(torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64))
        breaks = np.flatnonzero(np.diff(starts) != 1) + 1
        firsts = np.concatenate([[0], breaks])
        lengths = np.diff(np.concatenate([firsts, [starts.size]]))
        return cls(torch.from_numpy(starts[firsts]), torch.from_numpy(lengths))

    def __len__(self) -> int:
        return self._len

    @property
    def device(self) -> torch.device:
        return self.run_start.device

    def __getitem__(self, key: slice | torch.Tensor) -> torch.Tensor:
        """Start positions [B] int64 of the windows numbered ``key`` (slice or tensor)."""
        if isinstance(key, slice):
            lo, hi, step = key.indices(self._len)
            key = torch.arange(lo, hi, step, device=self.device)
        k = key.to(torch.int64)
        # Checked on the CPU only: on a GPU the check would stall every training step on a
        # host sync, and the training loop only asks for numbers it drew below len().
        on_cpu = k.device.type == "cpu" and k.numel() > 0
        if on_cpu and bool((k < -self._len).any() or (k >= self._len).any()):
            raise IndexError(f"window number out of range for {self._len} windows")
        k = torch.where(k < 0, k + self._len, k)
        run = torch.searchsorted(self.run_first[1:], k, right=True)
        return self.run_start[run] + (k - self.run_first[run])

    def to(self, device: torch.device | str) -> WindowIndex:
        moved = WindowIndex.__new__(WindowIndex)
        moved.run_start, moved.run_first = self.run_start.to(device), self.run_first.to(device)
        moved._len = self._len
        return moved

    def cpu(self) -> WindowIndex:
        return self.to("cpu")

    def numpy(self) -> np.ndarray:
        """Every start position (materialised; for tests and small sets)."""
        return self[:].cpu().numpy()


def epoch_windows(n: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """``min(k, n)`` distinct window numbers out of ``n``, uniformly and in random order.

    An epoch that draws a large share of the windows shuffles them all. One that draws a
    small share (``k <= n / 4``) never builds the permutation: it draws uniform numbers and
    keeps distinct ones until it has ``k``, a uniform sample without replacement in O(k)
    memory and time whatever ``n`` (one round almost always: fewer than k/8 collide).

    Returns:
        int64 [min(k, n)] on the CPU; the same for the same generator state.
    """
    if k >= n or k > SPARSE_EPOCH * n:
        return torch.randperm(n, generator=generator)[:k]
    picked = torch.zeros(0, dtype=torch.int64)
    while len(picked) < k:
        need = k - len(picked)
        draw = torch.randint(n, (need + need // 4 + 16,), generator=generator)
        picked = torch.unique(torch.cat([picked, draw]))  # sorted: order comes next
    # A random k of the distinct numbers, in random order; which ones depends on no value,
    # so the sample stays uniform.
    return picked[torch.randperm(len(picked), generator=generator)[:k]]


def window_index(
    panel: Panel, split: Split, spec: WindowSpec, part: str
) -> tuple[WindowIndex, int]:
    """The windows of :func:`window_starts` as a :class:`WindowIndex`, plus the skipped.

    Works from the positions of missing points only: a gap-free stretch ``[a, b)`` of a
    series holds the window starts ``[a, b - span]``. Memory is O(series + gaps) besides one
    boolean per point of the series being read, never one integer per window.
    """
    run_starts: list[np.ndarray] = []
    run_lengths: list[np.ndarray] = []
    skipped = 0
    for i in range(len(panel.series_ids)):
        o, n = int(panel.offsets[i]), int(panel.lengths[i])
        wanted = _target_range(panel, split, spec, part, i)
        if len(wanted) == 0:
            continue
        gaps = np.flatnonzero(np.isnan(panel.values[o : o + n]))
        a = np.concatenate([[0], gaps + 1])  # gap-free stretches [a, b)
        b = np.concatenate([gaps, [n]])
        lo = np.maximum(a, wanted.start)
        hi = np.minimum(b - spec.span, wanted.stop - 1)  # inclusive
        keep = hi >= lo
        lengths = (hi - lo + 1)[keep]
        skipped += len(wanted) - int(lengths.sum())
        run_starts.append(o + lo[keep])
        run_lengths.append(lengths)
    if not run_starts:
        return WindowIndex.from_starts(np.zeros(0, np.int64)), skipped
    index = WindowIndex(
        torch.from_numpy(np.concatenate(run_starts).astype(np.int64)),
        torch.from_numpy(np.concatenate(run_lengths).astype(np.int64)),
    )
    return index, skipped


def gather(
    values: torch.Tensor, starts: torch.Tensor, spec: WindowSpec
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gather a batch of windows from the resident series tensor.

    Args:
        values: [N] the concatenated (scaled) series, on the training device.
        starts: [B] int64 start indices on the same device.

    Returns:
        inputs [B, window] and targets [B, horizon].
    """
    offsets = torch.arange(spec.span, device=values.device)  # [span]
    idx = starts[:, None] + offsets[None, :]  # [B, span]
    batch = values[idx]  # [B, span]: the only copy, one batch at a time
    return batch[:, : spec.window], batch[:, spec.window :]


class Batch(NamedTuple):
    """One gathered batch: inputs, targets and what the model may know besides the values."""

    x: torch.Tensor  # [B, W]
    y: torch.Tensor  # [B, H]
    cov: torch.Tensor | None  # [B, W + H, C] known covariates over window and horizon
    series: torch.Tensor | None  # [B] int64 series index


def gather_batch(
    values: torch.Tensor,
    starts: torch.Tensor,
    spec: WindowSpec,
    covariates: torch.Tensor | None = None,
    point_series: torch.Tensor | None = None,
) -> Batch:
    """Gather values, covariates [N, C] and the series index [N] of the windows at ``starts``."""
    x, y = gather(values, starts, spec)
    cov = None
    if covariates is not None:
        idx = starts[:, None] + torch.arange(spec.span, device=values.device)[None, :]
        cov = covariates[idx]  # [B, span, C]
    series = point_series[starts] if point_series is not None else None
    return Batch(x, y, cov, series)
