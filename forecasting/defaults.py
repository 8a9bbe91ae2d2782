"""Settings derived from the data: a model group needs only a name, a selector and a horizon.

Each setting comes with one line saying why. The rules were chosen by measurement on real
series of seven frequencies: docs/defaults.md, bench/defaults.py. numpy and pandas only."""

from __future__ import annotations

import math
import re
import statistics
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from pandas.tseries import offsets

WINDOW_SEASONS = 7  # the window covers this many seasons (a week of hourly data)
TEST_SHARE, MAX_HOLDOUT = 20, 10  # test and validation: ~1/20 of a series, 1 to 10 horizons
STEPS_TARGET = 1500  # optimiser steps of one training run, whatever the data size
MAX_WINDOWS_PER_EPOCH, MAX_WINDOW = 8192, 10_000
MIN_KEPT = 0.5  # with gaps, half the observed points must still start a full window
T = TypeVar("T")
ALIAS_HINT = "write a pandas offset alias such as 5min, 15min, 30min, h, D, B, W, ME, QE or YE"
_LEGACY = {  # spellings pandas used to accept (or accepts with a warning) -> today's
    "T": "min", "Min": "min", "H": "h", "S": "s", "L": "ms", "U": "us", "N": "ns", "d": "D",
    "w": "W", "M": "ME", "Q": "QE", "q": "QE", "Y": "YE", "y": "YE", "A": "YE", "AS": "YS",
    "BA": "BYE", "BAS": "BYS", "BY": "BYE", "BM": "BME", "BQ": "BQE", "SM": "SME",
    "CBM": "CBME", "BH": "bh"}  # fmt: skip
_ALIAS = re.compile(r"(\d*)\s*([A-Za-z]+)(?:-([A-Za-z0-9]+))?")
_O = offsets
_PER_YEAR: dict[int, tuple[type, ...]] = {
    52: (_O.Week,), 24: (_O.SemiMonthEnd, _O.SemiMonthBegin),
    12: (_O.MonthEnd, _O.MonthBegin, _O.BusinessMonthEnd, _O.BusinessMonthBegin,
         _O.CustomBusinessMonthEnd, _O.CustomBusinessMonthBegin),
    4: (_O.QuarterEnd, _O.QuarterBegin, _O.BQuarterEnd, _O.BQuarterBegin),
    1: (_O.YearEnd, _O.YearBegin, _O.BYearEnd, _O.BYearBegin)}  # fmt: skip
_HOLDOUT = ("val_size", "test_size")
_INT_KEYS = ("season_length", "window", "patch_len", "seasonal_skip", "val_size", "test_size",
             "batch_size", "windows_per_epoch", "max_epochs", "patience")  # fmt: skip


class DefaultsError(ValueError):
    """Settings cannot be derived as asked: unknown frequency, series too short, bad override."""


def parse_freq(freq: str) -> offsets.BaseOffset:
    """A pandas offset for ``freq``, also from older spellings pandas no longer takes (``5T``,
    ``H``, ``M``, ``Q-DEC``, ``A``); ``.freqstr`` spells it today. Raises DefaultsError."""
    text = str(freq).strip()
    if match := _ALIAS.fullmatch(text):
        n, unit, anchor = match.groups()
        text = f"{n}{_LEGACY.get(unit, unit)}" + (f"-{anchor.upper()}" if anchor else "")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            offset = pd.tseries.frequencies.to_offset(text)
    except ValueError:
        raise DefaultsError(f"unknown frequency {freq!r}; {ALIAS_HINT}") from None
    if offset.n < 1:
        raise DefaultsError(f"frequency {freq!r} must step forward; {ALIAS_HINT}")
    return offset


def _season_info(freq: str) -> tuple[tuple[int, ...], str]:
    offset, day = parse_freq(freq), 86_400
    n, found = offset.n, None  # type: tuple[int, tuple[tuple[int, ...], str] | None]
    # Day is no Tick since pandas 3; other calendar offsets have no fixed length.
    seconds = offset.nanos / 1e9 if isinstance(offset, offsets.Tick) else 0.0
    seconds = n * float(day) if isinstance(offset, offsets.Day) else seconds
    if seconds in (day, 7 * day):
        found = ((7,), "week") if seconds == day else ((52,), "year")
    elif seconds >= 60 and seconds % 60 == 0 and day % seconds == 0:  # divides a day
        per_day = int(day // seconds)
        found = ((per_day, 7 * per_day) if seconds % 3600 == 0 else (per_day,)), "day"
    elif isinstance(offset, offsets.BusinessDay | offsets.CustomBusinessDay) and n == 1:
        found = (5,), "week"
    elif not seconds:
        per_year = next((p for p, cls in _PER_YEAR.items() if isinstance(offset, cls)), 0)
        if per_year == 1 or (per_year and per_year % n == 0):
            found = (max(1, per_year // n),), "year"
    if found is None:
        hint = f"give season_length (points per cycle) in the overrides, or {ALIAS_HINT}"
        raise DefaultsError(f"frequency {freq!r} has no standard season; {hint}")
    return found


def season_lengths(freq: str) -> tuple[int, ...]:
    """Seasons of ``freq`` in points, main one first (DefaultsError if unknown): 5 min 288, 30 min
    48 (points per day, for any step dividing a day), hourly 24 and 168 (whole hours also get
    points per week), daily 7, business daily 5, weekly 52, monthly 12, quarterly 4, yearly 1."""
    return _season_info(freq)[0]


def gap_free_runs(values: np.ndarray) -> list[int]:
    """Lengths of the stretches without NaN in one series' grid values (for ``runs``)."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], np.isfinite(values), [0]]).astype(int)))
    return (edges[1::2] - edges[::2]).tolist()


def seasonal_naive_wins(series: Iterable[np.ndarray], season_length: int, horizon: int) -> bool:
    """Whether, on most of these series (their training parts), repeating the last season
    forecasts the next ``horizon`` steps better than repeating the last value."""
    m, wins = season_length, []
    for y in series:
        lags = [(h, -(-h // m) * m) for h in range(1, horizon + 1) if -(-h // m) * m < y.size]
        errors = np.array([[np.nanmean(np.abs(y[a:] - y[:-a])) for a in pair] for pair in lags])
        wins += [bool(errors[:, 1].mean() < errors[:, 0].mean())] if m > 1 and lags else []
    return sum(wins) > len(wins) / 2


@dataclass(frozen=True)
class Setting:
    """A setting's value, why it has it, and whether it was ``derived`` or ``given``."""

    value: object
    why: str
    source: str = "derived"


@dataclass(frozen=True)
class DerivedSettings:
    """Settings by ModelGroup field name, the series too short for them with what to change,
    how many are usable, and the frequency in today's pandas spelling."""

    freq: str
    horizon: int
    settings: Mapping[str, Setting]
    too_short: Mapping[str, str]
    usable: int

    def values(self) -> dict[str, Any]:
        """For ``ModelGroup(name=..., series_kind=..., horizon=..., **values)``."""
        return {k: s.value for k, s in self.settings.items()}

    def describe(self) -> list[str]:
        """One line per setting: ``window = 168: 7 x season 24``."""
        return [f"{k} = {s.value}: {s.why}" for k, s in self.settings.items()]


class _Taker:  # records each setting: the override when one is given, else the derived one
    def __init__(self, overrides: Mapping[str, object]) -> None:
        self.given, self.out = dict(overrides), dict[str, Setting]()

    def __call__(self, name: str, value: T, why: str) -> T:
        given = name in self.given  # given values' types were checked (_check)
        self.out[name] = Setting(*((self.given[name], "given", "given") if given else (value, why)))
        return self.out[name].value  # type: ignore[return-value]


def _check(values: Mapping[str, object], horizon: int) -> None:
    """Types (of the overrides), then the engine's constraints (spec, model, ModelGroup)."""
    for k, x in values.items():
        low = int(k != "seasonal_skip")
        if k in _INT_KEYS and (not isinstance(x, int) or isinstance(x, bool) or x < low):
            raise DefaultsError(f"{k} must be a whole number >= {low}, got {x!r}")
    n: dict[str, int] = {k: x for k, x in values.items() if k in _INT_KEYS}  # type: ignore[misc]
    if len(n) < len(_INT_KEYS):
        return
    w, patch, skip = n["window"], n["patch_len"], n["seasonal_skip"]
    bad = [f"window must lie in [2, {MAX_WINDOW}], got {w}"] if not 2 <= w <= MAX_WINDOW else []
    bad += [f"window {w} must be a multiple of patch_len {patch}"] if patch and w % patch else []
    if skip and not horizon <= skip <= w:
        bad.append(f"seasonal_skip {skip} must be 0 or in [horizon {horizon}, window {w}]")
    bad += [f"{k} {n[k]} is under one horizon ({horizon})" for k in _HOLDOUT if n[k] < horizon]
    if bad:
        raise DefaultsError("; ".join(bad) + " (change the overrides)")


def _kept(runs: Sequence[int], window: int, horizon: int) -> float:
    # The share of the observed points that start a gap-free window + horizon.
    return sum(max(0, r - window - horizon + 1) for r in runs) / max(1, sum(runs))


def _patch(m: int, window: int) -> int:
    # A season per encoder step when the window holds two, else the largest divisor of the
    # season that leaves 8 steps (a bounded recurrence, for speed).
    if m > 1 and window >= 2 * m:
        return m
    return max(p for p in range(1, m + 1) if m % p == 0 and (p == 1 or p <= window // 8))


def _window(t: _Taker, ss: tuple[int, ...], h: int, ns: list[int], rest: int, rs: list[int]) -> int:
    m = ss[0]
    limit, why = max(
        (WINDOW_SEASONS * m, f"{WINDOW_SEASONS} x season {m}"),
        (max(ss), f"the second season {max(ss)}"),
        (m * math.ceil(2 * h / m), f"two horizons ({h}) in whole seasons of {m}"),
        key=lambda option: option[0],
    )
    fits = sorted(n for n in ns if n >= max(2, h) + rest)
    short = fits[len(fits) // 10] if fits else 0  # one short series must not shrink them all
    if fits and short - rest < limit:
        limit, why = short - rest, why + f", capped so 9 in 10 series fit ({short} points)"
    if rs and _kept(rs, limit, h) < MIN_KEPT:
        lo, hi = max(2, h), limit  # the longest window that keeps MIN_KEPT (monotone: bisect)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if _kept(rs, mid, h) >= MIN_KEPT else (lo, mid - 1)
        limit, why = lo, why + f", shortened so gaps leave {MIN_KEPT:.0%} of windows"
    limit = min(limit, MAX_WINDOW)
    return t("window", limit - limit % _patch(m, limit), why)


def _architecture(take: _Taker, ss: tuple[int, ...], h: int, w: int, seasonal: bool) -> None:
    m, patch = ss[0], _patch(ss[0], w)
    patch = max(p for p in range(1, patch + 1) if patch % p == 0 and w % p == 0)
    take("patch_len", patch, f"{w // patch} encoder steps of {patch} (season {m})")
    skip, why = 0, "no season fits in the window" if m > 1 else "no season"
    for s in sorted({s for s in ss if s > 1 and seasonal}, reverse=True):
        if s * math.ceil(h / s) <= w:
            skip = s * math.ceil(h / s)
            why = f"{skip // s} x season {s}: step h corrects the value {skip} steps earlier"
            break
    if not seasonal and m > 1:
        why = f"seasonal naive loses to naive in sample (season {m}, horizon {h})"
    take("seasonal_skip", skip, why)
    level = f"learn changes from the last value ({why})"
    take(
        "normalize",
        *(("window", "each window scaled by its mean and std") if seasonal else ("level", level)),
    )
    take("loss_scale", "window", "each window's loss divided by its std (scale-free)")


def _training(take: _Taker, n_windows: int) -> None:
    batch = min(256, max(16, 2 ** int(math.log2(max(1, n_windows // 32)))))
    batch = take("batch_size", batch, f"{n_windows} training windows / 32, a power of 2, 16-256")
    per_epoch = max(1, min(n_windows, MAX_WINDOWS_PER_EPOCH))
    per_epoch = take("windows_per_epoch", per_epoch, f"all, at most {MAX_WINDOWS_PER_EPOCH}")
    steps = math.ceil(per_epoch / batch)
    cycle = take("lr_schedule", "onecycle", "warm up, then anneal over all epochs") == "onecycle"
    take("learning_rate", 3e-3 if cycle else 2e-3, "peak rate of the schedule")
    epochs = min(100, max(5, math.ceil(STEPS_TARGET / steps)))
    epochs = take("max_epochs", epochs, f"about {STEPS_TARGET} steps at {steps} per epoch")
    why = "one-cycle runs its whole schedule" if cycle else "3 stalled epochs"
    take("patience", epochs if cycle else 3, why + "; best epoch restored")


def derive_settings(
    freq: str,
    horizon: int,
    lengths: Mapping[str, int],
    overrides: Mapping[str, object] = MappingProxyType({}),
    runs: Mapping[str, Sequence[int]] | None = None,
    seasonal: bool | None = None,
) -> DerivedSettings:
    """Derive a model group's settings from its frequency, horizon and series lengths.

    Args:
        freq: the series' one pandas alias (mixed frequencies are the caller's check).
        horizon: steps forecast at once; lengths: points per series id on the grid.
        overrides: settings taken as given (ModelGroup field names); what derives from them
            follows (a given window changes what fits). Other keys pass through unchecked.
        runs: gap-free stretch lengths per series (:func:`gap_free_runs`).
        seasonal: :func:`seasonal_naive_wins` on the training parts (None: season > 1).

    Raises:
        DefaultsError: unknown frequency, no series long enough (each named with the fix),
            or overrides that break one of the engine's constraints.
    """
    if horizon < 1 or not lengths:
        raise DefaultsError(f"need a horizon >= 1 (got {horizon}) and at least one series")
    _check(overrides, horizon)
    take = _Taker(overrides)
    ss, cycle = ((0,), "") if "season_length" in overrides else _season_info(freq)
    more = f"; second season {ss[1]} (a week)" if len(ss) > 1 else ""
    ss = (take("season_length", ss[0], f"points per {cycle}{more}"), *ss[1:])
    median = int(statistics.median(lengths.values()))
    k = min(MAX_HOLDOUT, max(1, median // (TEST_SHARE * horizon)))
    why = f"{k} x horizon {horizon}: ~1/{TEST_SHARE} of the median series ({median} points)"
    val, test = (take(name, k * horizon, why) for name in _HOLDOUT)
    flat = [r for sid in lengths for r in (runs or {}).get(sid, [])]
    w = _window(take, ss, horizon, list(lengths.values()), horizon + val + test, flat)
    need, fix = w + horizon + val + test, "lower the horizon, give a shorter window, or ingest"
    parts = f"needs {need} (window {w} + horizon {horizon} + validation {val} + test {test})"
    too_short = {
        k: f"{n} points, {parts}: {fix} {need - n} more points"
        for k, n in lengths.items()
        if n < need
    }
    if len(too_short) == len(lengths):
        listed = "; ".join(f"{k}: {v}" for k, v in list(too_short.items())[:5])
        raise DefaultsError(f"no series is long enough ({len(too_short)}): {listed}")
    _architecture(take, ss, horizon, w, ss[0] > 1 if seasonal is None else seasonal)
    usable = [n for k, n in lengths.items() if k not in too_short]
    n_windows = sum(n - need + 1 for n in usable)
    if flat:  # with gaps, only the windows that avoid them
        n_windows = int(n_windows * _kept(flat, w, horizon) / max(1e-9, _kept(usable, w, horizon)))
    _training(take, max(1, n_windows))
    for key, value in overrides.items():  # passed through
        take.out.setdefault(key, Setting(value, "given", "given"))
    _check({k: s.value for k, s in take.out.items()}, horizon)
    out, short, name = MappingProxyType(take.out), MappingProxyType(too_short), parse_freq(freq)
    return DerivedSettings(str(name.freqstr), horizon, out, short, len(usable))
