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
    valid = panel.valid
    for i in range(len(panel.series_ids)):
        o, n = int(panel.offsets[i]), int(panel.lengths[i])
        lo_target = {"train": 0, "val": int(split.val_start[i]), "test": int(split.test_start[i])}[
            part
        ]
        hi_target = {"train": int(split.val_start[i]), "val": int(split.test_start[i]), "test": n}[
            part
        ]
        # Target block [t + window, t + span) must lie within [lo_target, hi_target).
        t_lo = max(0, lo_target - spec.window)
        t_hi = hi_target - spec.span  # inclusive
        if t_hi < t_lo:
            continue
        ok = _valid_run_starts(valid[o : o + n], spec.span)[t_lo : t_hi + 1]
        positions = np.arange(t_lo, t_hi + 1, dtype=np.int64)
        skipped += int((~ok).sum())
        all_starts.append(o + positions[ok])
        all_series.append(np.full(int(ok.sum()), i, dtype=np.int64))
    if not all_starts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), skipped
    return np.concatenate(all_starts), np.concatenate(all_series), skipped


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
