"""Windows are index arithmetic over one copy of the data and match a naive reference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from forecasting.panel import Panel, PanelConfig, Split, build_panel, chronological_split
from forecasting.windows import (
    WindowIndex,
    WindowSpec,
    _valid_run_starts,
    gather,
    window_index,
    window_starts,
)


def create_sequences(
    values: np.ndarray, window: int, horizon: int
) -> tuple[np.ndarray, np.ndarray]:
    """The textbook per-window copy loop, used as the reference."""
    xs, ys = [], []
    for t in range(len(values) - window - horizon + 1):
        xs.append(values[t : t + window])
        ys.append(values[t + window : t + window + horizon])
    return np.array(xs), np.array(ys)


def _frame(lengths: dict[str, int], freq: str = "h") -> pd.DataFrame:
    parts = []
    for k, (sid, n) in enumerate(lengths.items()):
        ts = pd.date_range("2024-01-01", periods=n, freq=freq, tz="UTC")
        parts.append(pd.DataFrame({"series_id": sid, "ts": ts, "value": np.arange(n) + 1000.0 * k}))
    return pd.concat(parts, ignore_index=True)


def test_gathered_windows_equal_the_reference_loop() -> None:
    frame = _frame({"a": 60, "b": 45})
    panel = build_panel(frame, {"a": "h", "b": "h"}, PanelConfig())
    cfg = PanelConfig(test_size=0, val_size=0)
    split = chronological_split(panel, cfg, 1)
    spec = WindowSpec(window=7, horizon=3)
    starts, series_idx, skipped = window_starts(panel, split, spec, "train")
    x, y = gather(torch.from_numpy(panel.values), torch.from_numpy(starts), spec)
    ref_x, ref_y = [], []
    for i in range(2):
        rx, ry = create_sequences(panel.series_values(i), 7, 3)
        ref_x.append(rx)
        ref_y.append(ry)
    np.testing.assert_array_equal(x.numpy(), np.concatenate(ref_x))
    np.testing.assert_array_equal(y.numpy(), np.concatenate(ref_y))
    assert skipped == 0
    # No window crosses from one series into the next.
    assert (np.bincount(series_idx) == [60 - 10 + 1, 45 - 10 + 1]).all()


def test_split_parts_hold_targets_in_their_own_period() -> None:
    panel = build_panel(_frame({"a": 100}), {"a": "h"}, PanelConfig())
    cfg = PanelConfig(test_size=10, val_size=20)
    split = chronological_split(panel, cfg, 8)
    spec = WindowSpec(window=5, horizon=3)
    for part, lo, hi in (("train", 0, 70), ("val", 70, 90), ("test", 90, 100)):
        starts, _, _ = window_starts(panel, split, spec, part)
        first_target = starts + spec.window
        last_target = starts + spec.span - 1
        assert first_target.min() >= lo and last_target.max() < hi
        # Every admissible window is there: the first target spans [lo, hi - horizon].
        assert first_target.min() == max(lo, spec.window) and last_target.max() == hi - 1


def test_windows_over_long_gaps_are_skipped_and_counted() -> None:
    frame = _frame({"a": 50})
    frame = frame.drop(index=range(20, 26))  # a 6-point gap, longer than max_fill=3
    panel = build_panel(frame, {"a": "h"}, PanelConfig(max_fill=3))
    assert panel.n_missing == 6
    split = chronological_split(panel, PanelConfig(test_size=0, val_size=0), 1)
    spec = WindowSpec(4, 2)
    starts, _, skipped = window_starts(panel, split, spec, "train")
    x, y = gather(torch.from_numpy(panel.values), torch.from_numpy(starts), spec)
    assert torch.isfinite(x).all() and torch.isfinite(y).all()
    assert skipped == 6 + spec.span - 1
    assert len(starts) + skipped == 50 - spec.span + 1


def test_short_gaps_are_interpolated_not_skipped() -> None:
    frame = _frame({"a": 30}).drop(index=[10, 11])
    panel = build_panel(frame, {"a": "h"}, PanelConfig(max_fill=3))
    assert panel.n_filled == 2 and panel.n_missing == 0
    np.testing.assert_allclose(panel.values[10:12], [10.0, 11.0])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=60), st.integers(1, 8))
def test_valid_run_starts_matches_brute_force(valid: list[bool], span: int) -> None:
    arr = np.array(valid)
    expected = [all(arr[t : t + span]) for t in range(len(arr) - span + 1)]
    assert _valid_run_starts(arr, span).tolist() == expected


def test_window_index_is_one_run_per_gap_free_series() -> None:
    frame = _frame({"a": 20_000, "b": 5_000})
    panel = build_panel(frame, {"a": "h", "b": "h"}, PanelConfig())
    split = chronological_split(panel, PanelConfig(test_size=0, val_size=0), 1)
    spec = WindowSpec(168, 48)
    index, skipped = window_index(panel, split, spec, "train")
    starts, _, _ = window_starts(panel, split, spec, "train")
    assert len(index) == len(starts) == 20_000 + 5_000 - 2 * (spec.span - 1) and skipped == 0
    # Two runs (one per series) instead of one int64 per window.
    assert index.run_start.numel() == 2
    assert index.run_start.nbytes + index.run_first.nbytes < 100
    np.testing.assert_array_equal(index.numpy(), starts)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.lists(st.booleans(), min_size=1, max_size=70), min_size=1, max_size=4),
    st.integers(1, 6),
    st.integers(1, 4),
    st.integers(0, 12),
    st.integers(0, 12),
)
def test_window_index_equals_the_start_array(
    missing: list[list[bool]], window: int, horizon: int, val: int, test: int
) -> None:
    """Gappy series of any length, every split: the runs expand to exactly the starts."""
    values = []
    for k, holes in enumerate(missing):
        v = np.arange(len(holes), dtype=np.float64) + 100.0 * k
        v[np.array(holes)] = np.nan
        values.append(v)
    lengths = np.array([len(v) for v in values], dtype=np.int64)
    panel = Panel(
        series_ids=[f"s{k}" for k in range(len(values))],
        freqs=["h"] * len(values),
        values=np.concatenate(values).astype(np.float32),
        offsets=np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64),
        lengths=lengths,
        starts=[pd.Timestamp("2024-01-01", tz="UTC")] * len(values),
        n_filled=0,
        n_missing=int(sum(np.isnan(v).sum() for v in values)),
    )
    test_start = np.maximum(lengths - test, 0)
    split = Split(val_start=np.maximum(test_start - val, 0), test_start=test_start)
    spec = WindowSpec(window, horizon)
    for part in ("train", "val", "test"):
        starts, _, skipped = window_starts(panel, split, spec, part)
        index, index_skipped = window_index(panel, split, spec, part)
        assert len(index) == len(starts)
        np.testing.assert_array_equal(index.numpy(), starts)
        assert index_skipped == skipped


def test_window_index_lookups() -> None:
    index = WindowIndex.from_starts(np.array([3, 4, 5, 10, 11, 40]))
    assert len(index) == 6 and index.run_start.tolist() == [3, 10, 40]
    assert index[torch.tensor([5, 0, 3, 2, -1])].tolist() == [40, 3, 10, 5, 40]
    assert index[1:5:2].tolist() == [4, 10]
    with pytest.raises(IndexError, match="out of range for 6 windows"):
        index[torch.tensor([6])]
    empty = WindowIndex.from_starts(np.zeros(0, np.int64))
    assert len(empty) == 0 and empty[:].numel() == 0
