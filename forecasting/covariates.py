"""Covariates: calendar features, exogenous series known ahead, and past-only series.

All become one matrix [N, C] aligned with the panel's values (the same resident,
index-gathered layout), extended by ``horizon`` steps past each series' end when forecasting.
Its columns are the calendar features, then the known-future covariates (read over window and
horizon), then the past-only ones (read over the window only, see forecasting.models.base).
Each covariate is put on the grid under its missing-value policy (forecasting.missing) and
scaled with a mean and standard deviation fitted on the training part of every series.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecasting.missing import KNOWN_FUTURE, PAST_ONLY, align, refuse_missing
from forecasting.panel import Panel, PanelError, Split

# name -> (timestamp attribute, period): each feature becomes sin and cos of its phase.
CALENDAR: dict[str, tuple[str, float]] = {
    "minute": ("minute", 60.0),
    "hour": ("hour", 24.0),
    "dayofweek": ("day_of_week", 7.0),
    "dayofmonth": ("day", 31.0),
    "dayofyear": ("day_of_year", 366.0),
    "month": ("month", 12.0),
}


def check_calendar(names: Sequence[str]) -> None:
    unknown = [n for n in names if n not in CALENDAR]
    if unknown:
        raise ValueError(f"unknown calendar feature(s) {unknown}; choose from {sorted(CALENDAR)}")


def calendar_features(index: pd.DatetimeIndex, names: Sequence[str]) -> np.ndarray:
    """[T, 2 * len(names)] sin/cos of each calendar phase at the UTC timestamps."""
    cols = []
    for name in names:
        attr, period = CALENDAR[name]
        phase = 2 * np.pi * np.asarray(getattr(index, attr), dtype=np.float64) / period
        cols += [np.sin(phase), np.cos(phase)]
    return np.stack(cols, axis=1) if cols else np.zeros((len(index), 0))


@dataclass(frozen=True)
class ExogenousScaler:
    """Mean and standard deviation per covariate (known-future and past-only), fitted on the
    training part of every series only."""

    names: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, names: Sequence[str], values: np.ndarray) -> ExogenousScaler:
        """Fit on ``values`` [N, len(names)] in the covariates' own units (NaN ignored)."""
        with np.errstate(all="ignore"):
            present = ~np.isnan(values)
            count = present.sum(axis=0)
            total = np.where(present, values, 0.0).sum(axis=0)
            mean = np.divide(total, count, out=np.zeros(len(names)), where=count > 0)
            dev = np.where(present, values - mean, 0.0)
            var = np.divide((dev**2).sum(axis=0), count, out=np.zeros(len(names)), where=count > 0)
        sd = np.sqrt(var)
        return cls(tuple(names), mean, np.where(sd > 1e-8, sd, 1.0))

    def to_dict(self) -> dict[str, object]:
        return {"names": list(self.names), "mean": self.mean.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> ExogenousScaler:
        return cls(
            tuple(data["names"]),  # type: ignore[arg-type]
            np.asarray(data["mean"], dtype=np.float64),
            np.asarray(data["scale"], dtype=np.float64),
        )


def check_exogenous(names: Sequence[str], exogenous: pd.DataFrame | None) -> None:
    """Refuse a missing or incomplete exogenous frame with what to supply."""
    if not names:
        return
    if exogenous is None:
        raise PanelError(f"this model needs exogenous columns {list(names)}; pass exogenous=")
    missing = [c for c in ("series_id", "ts", *names) if c not in exogenous.columns]
    if missing:
        raise PanelError(f"exogenous frame lacks columns {missing}; it needs series_id, ts, ...")


def series_grid(panel: Panel, i: int, extra: int = 0) -> pd.DatetimeIndex:
    """Grid timestamps of series ``i`` and ``extra`` steps beyond its end."""
    return pd.date_range(
        panel.starts[i], periods=int(panel.lengths[i]) + extra, freq=panel.freqs[i]
    )


@dataclass(frozen=True)
class CovariateLayout:
    """The columns of the covariate matrix: calendar features, known-future, past-only.

    ``missing`` maps a covariate to its missing-value policy (absent: ``error``), ``resample``
    to its resampling rule onto the series' grid (absent: ``mean``).
    """

    calendar: tuple[str, ...] = ()
    known: tuple[str, ...] = ()
    past: tuple[str, ...] = ()
    missing: tuple[tuple[str, str], ...] = ()
    resample: tuple[tuple[str, str], ...] = ()

    @property
    def exogenous(self) -> tuple[str, ...]:
        """The covariates read from the exogenous frame, in column order."""
        return (*self.known, *self.past)

    @property
    def names(self) -> list[str]:
        """Every column's name (a calendar feature gives two: sine and cosine)."""
        cal = [f"{c}_{part}" for c in self.calendar for part in ("sin", "cos")]
        return [*cal, *self.exogenous]

    @property
    def known_columns(self) -> int:
        """Columns read over the horizon too (the first ones)."""
        return 2 * len(self.calendar) + len(self.known)

    @property
    def policies(self) -> dict[str, str]:
        return dict(self.missing)

    @property
    def rules(self) -> dict[str, str]:
        return dict(self.resample)


def raw_covariates(
    panel: Panel, layout: CovariateLayout, exogenous: pd.DataFrame | None, extra: int = 0
) -> np.ndarray:
    """[sum(length + extra), C] float64 covariates in their own units, series after series.

    Each exogenous covariate is aligned on the series' grid under its missing-value policy;
    NaN marks what is still missing (see forecasting.missing for who refuses it).
    """
    names, policies, rules = layout.exogenous, layout.policies, layout.rules
    by_series: dict[str, pd.DataFrame] = {}
    if names and exogenous is not None:
        frame = exogenous.assign(ts=pd.to_datetime(exogenous["ts"], utc=True))
        by_series = {str(k): g.set_index("ts") for k, g in frame.groupby("series_id")}
    blocks = []
    for i, sid in enumerate(panel.series_ids):
        grid = series_grid(panel, i, extra)
        parts = [calendar_features(grid, layout.calendar)]
        raw = by_series.get(sid)
        history = int(panel.lengths[i])
        for name in names:
            kind = KNOWN_FUTURE if name in layout.known else PAST_ONLY
            known = None if raw is None else raw[name].astype(np.float64)
            policy, rule = policies.get(name, "error"), rules.get(name, "mean")
            values = align(known, grid, history, policy, kind, rule)
            parts.append(values[:, None])
        blocks.append(np.concatenate(parts, axis=1))
    return np.concatenate(blocks)


def training_rows(panel: Panel, split: Split) -> np.ndarray:
    """[N] bool: the rows of the (extra = 0) covariate matrix in each series' training part."""
    position = np.arange(panel.values.size) - np.repeat(panel.offsets, panel.lengths)
    return position < np.repeat(split.val_start, panel.lengths)


def scale_covariates(
    raw: np.ndarray, layout: CovariateLayout, scaler: ExogenousScaler | None
) -> np.ndarray:
    """The exogenous columns of ``raw`` standardised with ``scaler``, as float32."""
    out = raw.copy()
    if layout.exogenous:
        assert scaler is not None and scaler.names == layout.exogenous
        first = 2 * len(layout.calendar)
        out[:, first:] = (out[:, first:] - scaler.mean) / scaler.scale
    return out.astype(np.float32)


def refuse_missing_history(panel: Panel, cov: np.ndarray, layout: CovariateLayout) -> None:
    """Raise CovariateError naming the first series and covariate missing a value at a point
    of its history where the target is known (``cov`` as from :func:`raw_covariates` with
    extra = 0). Where the target is missing no window is used, so neither is the covariate."""
    for i, sid in enumerate(panel.series_ids):
        o, n = int(panel.offsets[i]), int(panel.lengths[i])
        block = cov[o : o + n].copy()
        block[np.isnan(panel.series_values(i))] = 0.0
        grid = series_grid(panel, i)
        refuse_missing(sid, block, grid, layout.names, layout.policies, layout.known_columns)


def fit_covariates(
    panel: Panel, split: Split, layout: CovariateLayout, exogenous: pd.DataFrame | None
) -> tuple[np.ndarray, ExogenousScaler | None]:
    """The training panel's covariates scaled on each series' training part, and the scaler.

    Raises:
        CovariateError: a value is missing that its missing policy does not fill.
    """
    raw = raw_covariates(panel, layout, exogenous)
    refuse_missing_history(panel, raw, layout)
    scaler = None
    if layout.exogenous:
        first = 2 * len(layout.calendar)
        scaler = ExogenousScaler.fit(layout.exogenous, raw[training_rows(panel, split), first:])
    # What is left missing lies where the target is missing too: no window reads it.
    return np.nan_to_num(scale_covariates(raw, layout, scaler)), scaler
