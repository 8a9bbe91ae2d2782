"""Per-series standard scaling fitted on each series' training part only."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from forecasting.panel import Panel


@dataclass(frozen=True)
class SeriesScaler:
    """Mean and scale per series id; ``transform`` and ``inverse`` are exact inverses."""

    series_ids: tuple[str, ...]
    mean: np.ndarray  # [S] float64
    scale: np.ndarray  # [S] float64, > 0

    @classmethod
    def fit(cls, series_ids: list[str], train_parts: list[np.ndarray]) -> SeriesScaler:
        """Fit on each series' training values (NaN ignored)."""
        means, scales = [], []
        for part in train_parts:
            finite = part[np.isfinite(part)]
            if finite.size == 0:
                means.append(0.0)
                scales.append(1.0)
                continue
            mu = float(finite.mean())
            sd = float(finite.std())
            means.append(mu)
            # A constant series would divide by zero; fall back to its level (or 1).
            scales.append(sd if sd > 1e-8 else max(abs(mu), 1.0))
        return cls(tuple(series_ids), np.array(means), np.array(scales))

    def index(self, series_id: str) -> int:
        return self.series_ids.index(series_id)

    def transform(self, i: int, values: np.ndarray) -> np.ndarray:
        return (values - self.mean[i]) / self.scale[i]

    def inverse(self, i: int, values: np.ndarray) -> np.ndarray:
        return values * self.scale[i] + self.mean[i]

    def to_dict(self) -> dict[str, object]:
        return {
            "series_ids": list(self.series_ids),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> SeriesScaler:
        return cls(
            tuple(data["series_ids"]),  # type: ignore[arg-type]
            np.asarray(data["mean"], dtype=np.float64),
            np.asarray(data["scale"], dtype=np.float64),
        )


def scale_panel(panel: Panel, scaler: SeriesScaler) -> np.ndarray:
    """The panel scaled per series into one new float32 array, computed in float64 a chunk at
    a time so nothing but the result is allocated for the whole panel."""
    scaled = np.empty(panel.values.size, dtype=np.float32)
    chunk = 1 << 20
    for i in range(len(panel.series_ids)):
        o, n = int(panel.offsets[i]), int(panel.lengths[i])
        for lo in range(o, o + n, chunk):
            hi = min(lo + chunk, o + n)
            part = (panel.values[lo:hi] - scaler.mean[i]) / scaler.scale[i]
            # Missing points never reach a window (windows over them are skipped); zero keeps
            # NaN out of the resident tensor.
            scaled[lo:hi] = np.nan_to_num(part, copy=False, nan=0.0)
    return scaled
