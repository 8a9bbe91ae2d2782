"""One global recurrent model across many series: fit, backtest, predict, save and load.

This module only wires the separate pieces together: panel (grids and split), scaling,
windows, the model, the training loop and the backtest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from forecasting.backtest import BacktestResult, backtest
from forecasting.models import RecurrentForecaster, RecurrentForecasterConfig
from forecasting.panel import (
    Panel,
    PanelConfig,
    Split,
    build_panel,
    chronological_split,
    exclude_short,
)
from forecasting.scaling import SeriesScaler
from forecasting.training import Callback, TrainConfig, TrainResult, WindowData, fit, predict
from forecasting.windows import WindowSpec, window_starts

ARTIFACT_FORMAT = "seqcast-forecaster/1"


class ArtifactError(ValueError):
    """A model artifact is missing, of another format, or has been tampered with."""


@dataclass(frozen=True)
class ForecasterSpec:
    """Everything that defines a forecaster: architecture, training, data handling."""

    model: RecurrentForecasterConfig = field(default_factory=RecurrentForecasterConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    panel: PanelConfig = field(default_factory=PanelConfig)
    season_length: int = 24
    interval: float = 0.9  # nominal coverage of [yhat_lower, yhat_upper]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ForecasterSpec:
        return cls(
            model=RecurrentForecasterConfig(**data["model"]),
            train=TrainConfig(**data["train"]),
            panel=PanelConfig(**data["panel"]),
            season_length=int(data["season_length"]),
            interval=float(data["interval"]),
        )


def _scaled_values(panel: Panel, scaler: SeriesScaler) -> np.ndarray:
    series_of_point = np.repeat(np.arange(len(panel.series_ids)), panel.lengths)
    scaled = (panel.values - scaler.mean[series_of_point]) / scaler.scale[series_of_point]
    # Missing points never reach a window (windows over them are skipped); zero keeps NaN out
    # of the resident tensor.
    return np.nan_to_num(scaled, nan=0.0).astype(np.float32)


class GlobalForecaster:
    """A recurrent forecaster trained across series, each scaled on its training part."""

    def __init__(self, spec: ForecasterSpec) -> None:
        self.spec = spec
        self.window = WindowSpec(spec.model.window, spec.model.horizon)
        # Initial weights come from the run's seed, not from whatever used the global RNG before.
        with torch.random.fork_rng():
            torch.manual_seed(spec.train.seed)
            self.model = RecurrentForecaster(spec.model)
        self.scaler: SeriesScaler | None = None
        self.freqs: dict[str, str] = {}
        # Residual quantiles per horizon step, in scaled units: [2, H].
        self.residual_quantiles = np.zeros((2, spec.model.horizon))
        self._panel: Panel | None = None
        self._split: Split | None = None
        self.data_stats: dict[str, int] = {}
        self.excluded: dict[str, str] = {}

    def fit(
        self, frame: pd.DataFrame, freqs: dict[str, str], callbacks: Sequence[Callback] = ()
    ) -> TrainResult:
        """Train on the long frame; keeps the test part of each series for :meth:`backtest`."""
        panel, self.excluded = exclude_short(
            build_panel(frame, freqs, self.spec.panel), self.spec.panel, self.window.span
        )
        split = chronological_split(panel, self.spec.panel, self.window.span)
        scaler = SeriesScaler.fit(
            panel.series_ids,
            [panel.series_values(i)[: split.val_start[i]] for i in range(len(panel.series_ids))],
        )
        train, _, skip_train = window_starts(panel, split, self.window, "train")
        val, _, skip_val = window_starts(panel, split, self.window, "val")
        data = WindowData(
            torch.from_numpy(_scaled_values(panel, scaler)),
            torch.from_numpy(train),
            torch.from_numpy(val),
            self.window,
        )
        result = fit(self.model, data, self.spec.train, callbacks)
        self.scaler, self.freqs = scaler, {s: freqs[s] for s in panel.series_ids}
        self._panel, self._split = panel, split
        self._fit_intervals(data)
        self.data_stats = {
            "series": len(panel.series_ids),
            "points": int(panel.values.size),
            "filled_points": panel.n_filled,
            "missing_points": panel.n_missing,
            "train_windows": len(train),
            "val_windows": len(val),
            "skipped_windows": skip_train + skip_val,
        }
        return result

    def _fit_intervals(self, data: WindowData) -> None:
        # Empirical residual quantiles on validation windows give the interval per step.
        values = data.values.cpu().numpy()
        starts = data.val_starts.cpu().numpy()[:20_000]
        idx = starts[:, None] + np.arange(self.window.span)[None, :]
        batch = values[idx]
        pred = predict(self.model, batch[:, : self.window.window])
        resid = batch[:, self.window.window :] - pred
        alpha = (1.0 - self.spec.interval) / 2.0
        q = np.quantile(resid, [alpha, 1.0 - alpha], axis=0)
        # Keep the point forecast inside its own interval even when residuals are biased.
        self.residual_quantiles = np.stack([np.minimum(q[0], 0.0), np.maximum(q[1], 0.0)])

    def _predict_raw(self, i: int, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Raw-unit inputs [K, W] of scaler series ``i`` -> forecast, lower, upper [K, H]."""
        assert self.scaler is not None
        scaled = predict(self.model, self.scaler.transform(i, inputs))
        lo = scaled + self.residual_quantiles[0][None, :]
        hi = scaled + self.residual_quantiles[1][None, :]
        return (
            self.scaler.inverse(i, scaled),
            self.scaler.inverse(i, lo),
            self.scaler.inverse(i, hi),
        )

    def backtest(self) -> BacktestResult:
        """Rolling-origin backtest on the held-out test part, beside naive and seasonal naive."""
        if self._panel is None or self._split is None:
            raise RuntimeError("call fit() before backtest()")
        return self._backtest(self._panel, self._split)

    def evaluate(self, frame: pd.DataFrame, panel_config: PanelConfig) -> BacktestResult:
        """Backtest this (already trained) forecaster on the held-out end of ``frame``.

        ``panel_config`` defines the holdout, so a champion and a challenger can be compared
        on exactly the same windows. Series unknown to this forecaster are left out.
        """
        known = frame[frame["series_id"].isin(list(self.freqs))]
        panel, _ = exclude_short(
            build_panel(known, self.freqs, panel_config), panel_config, self.window.span
        )
        return self._backtest(panel, chronological_split(panel, panel_config, self.window.span))

    def _backtest(self, panel: Panel, split: Split) -> BacktestResult:
        if self.scaler is None:
            raise RuntimeError("the forecaster is not fitted")
        scaler = self.scaler
        return backtest(
            panel,
            split,
            self.window.window,
            self.window.horizon,
            self.spec.season_length,
            lambda i, x: self._predict_raw(scaler.index(panel.series_ids[i]), x),
        )

    def predict(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
        """Forecast the next ``horizon`` steps after each series' last grid point.

        Returns:
            Rows ``series_id, ts, step, yhat, yhat_lower, yhat_upper`` and, per series that
            could not be forecast, the reason.
        """
        if self.scaler is None:
            raise RuntimeError("the forecaster is not fitted")
        known = [s for s in frame["series_id"].unique() if s in self.freqs]
        skipped = {
            str(s): "series was not in the training data; retrain to include it"
            for s in frame["series_id"].unique()
            if s not in self.freqs
        }
        if not known:
            return pd.DataFrame(
                columns=["series_id", "ts", "step", "yhat", "yhat_lower", "yhat_upper"]
            ), skipped
        panel = build_panel(frame[frame["series_id"].isin(known)], self.freqs, self.spec.panel)
        out: list[pd.DataFrame] = []
        w, h = self.window.window, self.window.horizon
        for i, sid in enumerate(panel.series_ids):
            y = panel.series_values(i).astype(np.float64)
            if y.size < w or not np.isfinite(y[-w:]).all():
                skipped[sid] = f"the last {w} points contain gaps longer than max_fill"
                continue
            yhat, lo, hi = self._predict_raw(self.scaler.index(sid), y[-w:][None, :])
            last = panel.timestamp(i, y.size - 1)
            step = pd.tseries.frequencies.to_offset(panel.freqs[i])
            out.append(
                pd.DataFrame(
                    {
                        "series_id": sid,
                        "ts": [last + k * step for k in range(1, h + 1)],
                        "step": np.arange(1, h + 1),
                        "yhat": yhat[0],
                        "yhat_lower": lo[0],
                        "yhat_upper": hi[0],
                    }
                )
            )
        rows = (
            pd.concat(out, ignore_index=True)
            if out
            else pd.DataFrame(
                columns=["series_id", "ts", "step", "yhat", "yhat_lower", "yhat_upper"]
            )
        )
        return rows, skipped

    def save(self, path: str | Path) -> Path:
        """Write weights, config, scaler and intervals as one ``weights_only``-safe file."""
        if self.scaler is None:
            raise RuntimeError("the forecaster is not fitted")
        payload = {
            "format": ARTIFACT_FORMAT,
            "spec": self.spec.to_dict(),
            "state_dict": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "scaler": self.scaler.to_dict(),
            "freqs": dict(self.freqs),
            "residual_quantiles": torch.from_numpy(self.residual_quantiles.copy()),
        }
        path = Path(path)
        torch.save(payload, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> GlobalForecaster:
        """Rebuild a forecaster from :meth:`save`'s file without executing any pickled code."""
        try:
            payload = torch.load(Path(path), map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ArtifactError(f"{path}: not a loadable seqcast model artifact ({exc})") from exc
        if not isinstance(payload, dict) or payload.get("format") != ARTIFACT_FORMAT:
            raise ArtifactError(f"{path}: expected format {ARTIFACT_FORMAT!r}")
        forecaster = cls(ForecasterSpec.from_dict(payload["spec"]))
        try:
            forecaster.model.load_state_dict(payload["state_dict"])
        except RuntimeError as exc:
            raise ArtifactError(f"{path}: weights do not match the config ({exc})") from exc
        forecaster.model.eval()
        forecaster.scaler = SeriesScaler.from_dict(payload["scaler"])
        forecaster.freqs = dict(payload["freqs"])
        forecaster.residual_quantiles = payload["residual_quantiles"].numpy()
        return forecaster
