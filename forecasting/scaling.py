"""Per-series standard scaling fitted on each series' training part only."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
