"""A panel: many series on regular grids, stored once, contiguously, with a chronological split.

The long frame ``(series_id, ts, value)`` becomes one float32 array holding every series back to
back (``offsets`` say where each starts) plus a validity mask. Windows are later gathered from
it by index arithmetic (see windows.py), so memory stays O(total length).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecasting.errors import PanelError  # re-exported: callers import it from here


@dataclass(frozen=True)
class PanelConfig:
    """How raw observations become regular series and how they are split in time.

    Attributes:
        max_fill: gaps of at most this many missing grid points are linearly interpolated;
            longer gaps stay missing and windows that touch them are skipped.
        test_size: points at the end of each series held out for the backtest.
        val_size: points before the test part used for early stopping.
    """

    max_fill: int = 3
    test_size: int = 96
    val_size: int = 480


@dataclass
class Panel:
    """Series on regular grids, concatenated. Index arrays are per series."""

    series_ids: list[str]
    freqs: list[str]
    values: np.ndarray  # [N] float32, NaN where missing (raw units)
    offsets: np.ndarray  # [S] int64, start of each series in ``values``
    lengths: np.ndarray  # [S] int64
    starts: list[pd.Timestamp]  # grid timestamp of each series' first point (UTC)
    n_filled: int  # points filled by interpolation
    n_missing: int  # grid points still missing after filling

    @property
    def valid(self) -> np.ndarray:
        return ~np.isnan(self.values)

    def series_values(self, i: int) -> np.ndarray:
        """Values of series ``i`` (a view, not a copy)."""
        o = int(self.offsets[i])
        return self.values[o : o + int(self.lengths[i])]

    def timestamp(self, i: int, position: int) -> pd.Timestamp:
        """Grid timestamp of ``position`` within series ``i``."""
        return self.starts[i] + position * pd.tseries.frequencies.to_offset(self.freqs[i])


def _regularize(group: pd.DataFrame, freq: str, max_fill: int) -> tuple[pd.Series, int]:
    s = group.set_index("ts")["value"].sort_index()
    try:
        # Fixed-length steps are anchored on the newest reading, so the grid (and every
        # forecast's target time) keeps the sensor's own phase: readings at :02 and :07
        # stay at :02 and :07, and forecasts meet their actuals in forecast_vs_actual.
        tick = isinstance(pd.tseries.frequencies.to_offset(freq), pd.offsets.Tick)
        grid = s.resample(freq, origin=s.index.max() if tick else "start_day").mean()
    except ValueError as exc:
        raise PanelError(f"frequency {freq!r} is not a pandas offset alias: {exc}") from exc
    missing_before = int(grid.isna().sum())
    if max_fill == 0 or missing_before == 0:
        return grid, 0
    filled = grid.interpolate(method="linear", limit=max_fill, limit_area="inside")
    # interpolate fills the first `limit` points of a longer gap too; undo that so a long gap
    # stays wholly missing.
    gap_id = grid.notna().cumsum()
    gap_len = grid.isna().groupby(gap_id).transform("sum")
    filled[grid.isna() & (gap_len > max_fill)] = np.nan
    return filled, missing_before - int(filled.isna().sum())


def build_panel(frame: pd.DataFrame, freqs: dict[str, str], config: PanelConfig) -> Panel:
    """Put the series of a long frame onto their grids.

    Args:
        frame: columns ``series_id, ts (tz-aware), value``.
        freqs: declared frequency per series id (pandas offset alias).
        config: gap filling rules.
    """
    ids: list[str] = []
    chunks: list[np.ndarray] = []
    starts: list[pd.Timestamp] = []
    n_filled = 0
    for sid, group in frame.groupby("series_id", sort=True):
        sid = str(sid)
        if sid not in freqs:
            raise PanelError(f"series {sid!r} has no declared frequency")
        grid, filled = _regularize(group, freqs[sid], config.max_fill)
        if grid.empty:
            continue
        ids.append(sid)
        chunks.append(grid.to_numpy(dtype=np.float32))
        starts.append(pd.Timestamp(grid.index[0]).tz_convert("UTC"))
        n_filled += filled
    if not ids:
        raise PanelError("no observations for the requested series")
    lengths = np.array([len(c) for c in chunks], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    values = np.concatenate(chunks).astype(np.float32)
    return Panel(
        series_ids=ids,
        freqs=[freqs[s] for s in ids],
        values=values,
        offsets=offsets,
        lengths=lengths,
        starts=starts,
        n_filled=n_filled,
        n_missing=int(np.isnan(values).sum()),
    )


def exclude_short(
    panel: Panel, config: PanelConfig, min_train: int
) -> tuple[Panel, dict[str, str]]:
    """Drop series too short for one training window plus validation and test parts.

    Returns the remaining panel and, per dropped series, why. Raises PanelError when none
    remain, so a scheduled run fails with a reason instead of training on nothing.
    """
    need = min_train + config.val_size + config.test_size
    keep = [i for i, n in enumerate(panel.lengths) if n >= need]
    excluded = {
        panel.series_ids[i]: f"{int(panel.lengths[i])} points, needs {need}"
        for i in range(len(panel.series_ids))
        if i not in keep
    }
    if not keep:
        raise PanelError(
            f"every series is too short ({'; '.join(f'{k}: {v}' for k, v in excluded.items())}); "
            "lower window, val_size or test_size"
        )
    if len(keep) == len(panel.series_ids):
        return panel, excluded
    chunks = [panel.series_values(i) for i in keep]
    lengths = panel.lengths[keep]
    values = np.concatenate(chunks)
    return (
        Panel(
            series_ids=[panel.series_ids[i] for i in keep],
            freqs=[panel.freqs[i] for i in keep],
            values=values,
            offsets=np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64),
            lengths=lengths,
            starts=[panel.starts[i] for i in keep],
            n_filled=panel.n_filled,
            n_missing=int(np.isnan(values).sum()),
        ),
        excluded,
    )


@dataclass(frozen=True)
class Split:
    """Chronological boundaries per series, as positions within each series.

    Train targets lie in ``[0, val_start)``, validation targets in ``[val_start, test_start)``
    and backtest targets in ``[test_start, length)``.
    """

    val_start: np.ndarray  # [S] int64
    test_start: np.ndarray  # [S] int64


def chronological_split(panel: Panel, config: PanelConfig, min_train: int) -> Split:
    """Hold out the last ``test_size`` points, and ``val_size`` before them, of every series."""
    test_start = panel.lengths - config.test_size
    val_start = test_start - config.val_size
    short = [
        f"{sid} ({n} points)"
        for sid, n, v in zip(panel.series_ids, panel.lengths, val_start, strict=True)
        if v < min_train
    ]
    if short:
        raise PanelError(
            f"series too short for window+horizon {min_train} plus validation {config.val_size} "
            f"and test {config.test_size} points: {', '.join(short)}; lower val_size/test_size "
            "or the window, or exclude these series"
        )
    return Split(val_start=val_start.astype(np.int64), test_start=test_start.astype(np.int64))


def refit_splits(panel: Panel, config: PanelConfig) -> tuple[Split, Split]:
    """A refit's splits: one whose training part is every point (nothing held out), and one
    whose validation part is the newest ``val_size`` points, which the refit trains on too:
    they only drive its learning-rate schedule and its divergence check."""
    end = panel.lengths.astype(np.int64)
    newest = np.maximum(end - config.val_size, 0).astype(np.int64)
    return Split(val_start=end, test_start=end), Split(val_start=newest, test_start=end)
