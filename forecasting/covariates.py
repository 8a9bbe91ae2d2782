"""Known covariates: calendar features from timestamps and exogenous series known ahead.

Both become one float32 matrix [N, C] aligned with the panel's values (the same resident,
index-gathered layout), extended by ``horizon`` steps past each series' end when forecasting.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecasting.panel import Panel, PanelError

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
    """Mean and standard deviation per exogenous variable, fitted on training data."""

    names: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, names: Sequence[str], frame: pd.DataFrame) -> ExogenousScaler:
        mean = np.array([float(frame[n].mean()) for n in names])
        sd = np.array([float(frame[n].std(ddof=0)) for n in names])
        return cls(tuple(names), np.nan_to_num(mean), np.where(sd > 1e-8, sd, 1.0))

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


def covariate_matrix(
    panel: Panel,
    calendar: Sequence[str],
    exog_names: Sequence[str],
    exogenous: pd.DataFrame | None,
    scaler: ExogenousScaler | None,
    extra: int = 0,
) -> tuple[np.ndarray, dict[str, str]]:
    """[sum(length + extra), C] covariates, series after series, and per series what is missing.

    Exogenous values are aligned on each series' grid and carried forward over short gaps;
    a series whose exogenous values are unknown somewhere (the forecast horizon included) is
    reported, and its rows hold NaN there.
    """
    blocks, problems = [], {}
    by_series = (
        {str(k): g.set_index("ts")[list(exog_names)] for k, g in exogenous.groupby("series_id")}
        if exog_names and exogenous is not None
        else {}
    )
    for i, sid in enumerate(panel.series_ids):
        grid = series_grid(panel, i, extra)
        parts = [calendar_features(grid, calendar)]
        if exog_names:
            assert scaler is not None
            raw = by_series.get(sid)
            if raw is None:
                values = np.full((len(grid), len(exog_names)), np.nan)
            else:
                known = raw[~raw.index.duplicated()].sort_index()
                aligned = known.reindex(grid, method="ffill")
                # Carried forward over gaps, never past the last value supplied.
                aligned[grid > known.index.max()] = np.nan
                values = aligned.to_numpy(dtype=np.float64)
            if np.isnan(values).any():
                first = grid[int(np.isnan(values).any(axis=1).argmax())]
                problems[sid] = f"exogenous values unknown from {first} on"
            parts.append((values - scaler.mean) / scaler.scale)
        blocks.append(np.concatenate(parts, axis=1))
    return np.concatenate(blocks).astype(np.float32), problems
