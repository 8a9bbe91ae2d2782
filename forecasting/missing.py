"""Aligning one covariate on a series' grid under its declared missing-value policy.

Policies (declared per covariate, ``error`` by default, so nothing is filled silently):

Values are first put on the grid by their declared resampling rule (:data:`RESAMPLE_RULES`):
the values supplied within each grid step ``[g, g + freq)`` become one, their ``mean`` by
default (the binning the target gets), or their ``sum`` (amounts such as rainfall or units
sold), ``first``, ``last``, ``min`` or ``max``. A covariate coarser than the grid (daily values
on an hourly series) fills only the steps that hold a value; ``ffill`` carries it. Then:

* ``error``: a grid point without a value stays missing, and whoever needs it refuses with
  :class:`CovariateError` naming series, covariate and time.
* ``ffill``: a grid point without a value takes the last one before it (this also puts a
  coarser covariate, e.g. daily, on a finer grid). A known-future covariate is never carried
  past the last value supplied: its horizon must be supplied. A past-only one is carried up
  to the forecast origin. Points before the first value stay missing.
* ``zero``: a grid point without a value takes 0.0 (in the covariate's own units).

Over the forecast horizon a known-future covariate must be supplied whatever its policy, and
a past-only covariate is never read there (the model feeds it to the encoder only).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from forecasting.errors import CovariateError

MISSING_POLICIES = ("error", "ffill", "zero")
RESAMPLE_RULES = ("mean", "sum", "first", "last", "min", "max")
KNOWN_FUTURE, PAST_ONLY = "known_future", "past_only"


def _binned(known: pd.Series, grid: pd.DatetimeIndex, rule: str = "mean") -> np.ndarray:
    """[len(grid)] the values supplied in each grid step ``[g, g + freq)`` combined by
    ``rule`` (one of :data:`RESAMPLE_RULES`), NaN where none. ``mean`` is the binning the panel
    gives the target, so a covariate at the sensor's own timestamps lands on the same grid
    points as the readings."""
    if rule not in RESAMPLE_RULES:
        raise ValueError(f"resampling rule {rule!r}: choose from {list(RESAMPLE_RULES)}")
    out = np.full(len(grid), np.nan)
    assert grid.freq is not None, "a series grid has a frequency (see series_grid)"
    end = grid[-1] + grid.freq
    inside = (known.index >= grid[0]) & (known.index < end)
    if inside.any():
        position = grid.searchsorted(known.index[inside], side="right") - 1
        # known is sorted by time, so first and last are the earliest and latest in a step
        combined = known[inside].groupby(position).agg(rule)
        out[combined.index.to_numpy()] = combined.to_numpy(dtype=np.float64)
    return out


def align(
    known: pd.Series | None,
    grid: pd.DatetimeIndex,
    history: int,
    policy: str,
    kind: str,
    rule: str = "mean",
) -> np.ndarray:
    """[len(grid)] float64 values of one covariate on ``grid``; NaN where still missing.

    Args:
        known: the supplied values indexed by UTC timestamp (None: none supplied).
        grid: the series' grid (with its ``freq``), its history (``history`` points) and
            then any horizon.
        policy: one of :data:`MISSING_POLICIES`.
        kind: ``known_future`` or ``past_only``.
        rule: how the values within one grid step become one (:data:`RESAMPLE_RULES`).
    """
    known = None if known is None else known.dropna().sort_index()
    if known is None or known.empty:
        values = np.full(len(grid), np.nan)
    else:
        values = _binned(known, grid, rule)
        if policy == "ffill":
            earlier = known[known.index < grid[0]]
            if np.isnan(values[0]) and not earlier.empty:
                values[0] = float(earlier.iloc[-1])
            values = pd.Series(values).ffill().to_numpy(dtype=np.float64, copy=True)
            last = known.index.max()
            if kind == KNOWN_FUTURE and last < grid[-1]:
                # Never carried past the last value supplied: the horizon must be supplied.
                values[grid.searchsorted(last, side="right") :] = np.nan
    if policy == "zero":
        values[:history] = np.nan_to_num(values[:history], nan=0.0)
        if kind == PAST_ONLY:
            values = np.nan_to_num(values, nan=0.0)
    return values


def first_missing(
    block: np.ndarray, names: Sequence[str], known_cols: int, window: int | None
) -> tuple[int, int] | None:
    """(row, column) of the first value the model needs that is missing, or None.

    ``block`` [T, C] holds one series' covariates, the first ``known_cols`` columns known in
    the future (calendar and known-future), the rest past-only. With ``window`` the block is
    one forecast's window and horizon: past-only columns are needed over the window only.
    """
    needed = np.isnan(block)
    if window is not None:
        needed[window:, known_cols:] = False
    if not needed.any():
        return None
    rows, cols = np.nonzero(needed)
    first = int(np.argmin(rows))
    return int(rows[first]), int(cols[first])


def refuse_missing(
    series_id: str,
    block: np.ndarray,
    grid: pd.DatetimeIndex,
    names: Sequence[str],
    policies: dict[str, str],
    known_cols: int,
    window: int | None = None,
) -> None:
    """Raise :class:`CovariateError` when ``block`` lacks a value the model needs.

    ``names`` are the block's column names (calendar columns are never missing);
    ``window`` as in :func:`first_missing`, where rows from ``window`` on are the horizon.
    """
    found = first_missing(block, names, known_cols, window)
    if found is None:
        return
    row, col = found
    name, ts = names[col], grid[row]
    if window is not None and row >= window:
        raise CovariateError(
            f"series {series_id!r}: known-future covariate {name!r} is missing over the "
            f"forecast horizon from {ts} on; supply its values up to {grid[-1]}"
        )
    policy = policies.get(name, "error")
    how = (
        "there is no earlier value to carry forward"
        if policy == "ffill"
        else "supply it, or declare missing: ffill or zero for this covariate"
    )
    raise CovariateError(
        f"series {series_id!r}: covariate {name!r} is missing at {ts} "
        f"(missing policy {policy!r}); {how}"
    )
