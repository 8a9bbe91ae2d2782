"""One global recurrent model across many series: fit, backtest, predict, save and load.

This module only wires the separate pieces together: panel (grids and split), scaling,
covariates, windows, the model, the training loop and the backtest.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from forecasting.backtest import BacktestResult, backtest
from forecasting.covariates import ExogenousScaler, check_exogenous, covariate_matrix
from forecasting.errors import ArtifactError
from forecasting.models import RecurrentForecasterConfig, build_model
from forecasting.panel import (
    Panel,
    PanelConfig,
    Split,
    build_panel,
    chronological_split,
    exclude_short,
)
from forecasting.scaling import SeriesScaler
from forecasting.spec import ForecasterSpec
from forecasting.training import Callback, TrainResult, WindowData, fit, predict
from forecasting.windows import WindowSpec, window_index

ARTIFACT_FORMAT = "seqcast-forecaster/2"
FORECAST_COLUMNS = ["series_id", "ts", "step", "yhat", "yhat_lower", "yhat_upper"]

__all__ = ["ArtifactError", "ForecasterSpec", "GlobalForecaster"]


_BUILD_LOCK = threading.Lock()


def _scaled_values(panel: Panel, scaler: SeriesScaler) -> np.ndarray:
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


class GlobalForecaster:
    """A recurrent forecaster trained across series, each scaled on its training part."""

    def __init__(self, spec: ForecasterSpec) -> None:
        self.spec = spec
        self.window = WindowSpec(spec.model.window, spec.model.horizon)
        self._build(spec.model_config(n_series=0))
        self.scaler: SeriesScaler | None = None
        self.exog_scaler: ExogenousScaler | None = None
        self.freqs: dict[str, str] = {}
        # Residual quantiles per horizon step, in scaled units: [2, H].
        self.residual_quantiles = np.zeros((2, spec.model.horizon))
        self._panel: Panel | None = None
        self._split: Split | None = None
        self._exogenous: pd.DataFrame | None = None
        self.data_stats: dict[str, int] = {}
        self.excluded: dict[str, str] = {}
        # Why the last fit did or did not start from given weights (warm start), for the log.
        self.warm_start_note = ""

    def _build(self, config: RecurrentForecasterConfig) -> None:
        self.model_config = config
        # Initial weights come from the run's seed, not from whatever used the global RNG before;
        # the lock keeps models built in parallel threads (Dask fan-out) from sharing the stream.
        with _BUILD_LOCK, torch.random.fork_rng():
            torch.manual_seed(self.spec.train.seed)
            self.model = build_model(config)

    @property
    def has_holdout(self) -> bool:
        """Fitted in this process, so :meth:`backtest` has the held-out part at hand."""
        return self._panel is not None

    @property
    def _uses_covariates(self) -> bool:
        return self.model_config.n_covariates > 0

    def _covariates(self, panel: Panel, extra: int = 0) -> tuple[np.ndarray, dict[str, str]]:
        return covariate_matrix(
            panel, self.spec.calendar, self.spec.exogenous, self._exogenous, self.exog_scaler, extra
        )

    def fit(
        self,
        frame: pd.DataFrame,
        freqs: dict[str, str],
        callbacks: Sequence[Callback] = (),
        exogenous: pd.DataFrame | None = None,
        init_state: dict[str, torch.Tensor] | None = None,
    ) -> TrainResult:
        """Train on the long frame; keeps the test part of each series for :meth:`backtest`.

        Args:
            exogenous: ``series_id, ts`` and one column per name in ``spec.exogenous``.
            init_state: start from these weights (fine-tune, "warm start") when every tensor
                matches the model's names and shapes; otherwise train from the seeded
                initialisation. :attr:`warm_start_note` says which and why.
        """
        check_exogenous(self.spec.exogenous, exogenous)
        panel, self.excluded = exclude_short(
            build_panel(frame, freqs, self.spec.panel), self.spec.panel, self.window.span
        )
        split = chronological_split(panel, self.spec.panel, self.window.span)
        if self.spec.embed_series:
            self._build(self.spec.model_config(n_series=len(panel.series_ids)))
        self.warm_start_note = "" if init_state is None else self._warm_start(init_state)
        scaler = SeriesScaler.fit(
            panel.series_ids,
            [panel.series_values(i)[: split.val_start[i]] for i in range(len(panel.series_ids))],
        )
        self.scaler, self.freqs = scaler, {s: freqs[s] for s in panel.series_ids}
        self._panel, self._split, self._exogenous = panel, split, exogenous
        if self.spec.exogenous and exogenous is not None:
            self.exog_scaler = ExogenousScaler.fit(self.spec.exogenous, exogenous)
        train, skip_train = window_index(panel, split, self.window, "train")
        val, skip_val = window_index(panel, split, self.window, "val")
        covariates = (
            torch.from_numpy(np.nan_to_num(self._covariates(panel)[0]))
            if self._uses_covariates
            else None
        )
        point_series = (
            torch.from_numpy(np.repeat(np.arange(len(panel.series_ids)), panel.lengths))
            if self.model_config.n_series
            else None
        )
        data = WindowData(
            torch.from_numpy(_scaled_values(panel, scaler)),
            train,
            val,
            self.window,
            covariates,
            point_series,
        )
        result = fit(self.model, data, self.spec.train, callbacks, self.model_config.quantiles)
        if self.spec.intervals == "residual":
            self._fit_residual_intervals(data)
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

    def _warm_start(self, state: dict[str, torch.Tensor]) -> str:
        """Load ``state`` into the fresh model when it fits exactly; say what happened."""
        own = self.model.state_dict()
        if set(state) != set(own):
            missing = sorted(set(own) ^ set(state))[:3]
            return f"from scratch: the weights' layers differ ({', '.join(missing)} ...)"
        for key, tensor in own.items():
            if tuple(state[key].shape) != tuple(tensor.shape):
                return (
                    f"from scratch: {key} has shape {tuple(state[key].shape)} in the given "
                    f"weights, {tuple(tensor.shape)} here"
                )
        self.model.load_state_dict(state)
        return "warm start: initialised from the given weights"

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The model's weights on the CPU (for a later :meth:`fit` ``init_state``)."""
        return {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}

    def _fit_residual_intervals(self, data: WindowData) -> None:
        # Empirical residual quantiles on validation windows give the interval per step.
        b = data.to(torch.device("cpu")).batch(data.val_starts.cpu()[:20_000])
        pred = predict(
            self.model,
            b.x.numpy(),
            None if b.cov is None else b.cov.numpy(),
            None if b.series is None else b.series.numpy(),
        )[..., 0]
        resid = b.y.numpy() - pred
        alpha = (1.0 - self.spec.interval) / 2.0
        q = np.quantile(resid, [alpha, 1.0 - alpha], axis=0)
        # Keep the point forecast inside its own interval even when residuals are biased.
        self.residual_quantiles = np.stack([np.minimum(q[0], 0.0), np.maximum(q[1], 0.0)])

    def _predict_raw(
        self, idx: np.ndarray, inputs: np.ndarray, cov: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Raw-unit inputs [K, W] of the series at scaler positions ``idx`` [K] (+ covariates
        [K, W + H, C]) -> forecast, lower, upper [K, H]; the rows may mix series."""
        assert self.scaler is not None
        mean = self.scaler.mean[idx][:, None]
        scale = self.scaler.scale[idx][:, None]
        series = idx if self.model_config.n_series else None
        out = predict(self.model, (inputs - mean) / scale, cov, series)  # [K, H, Q]
        if self.spec.intervals == "quantile":
            # Rearranged (sorted) quantiles never cross (Chernozhukov et al. 2010).
            out = np.sort(out, axis=-1)
            lo, mid, hi = out[..., 0], out[..., 1], out[..., 2]
        else:
            mid = out[..., 0]
            lo = mid + self.residual_quantiles[0][None, :]
            hi = mid + self.residual_quantiles[1][None, :]
        return mid * scale + mean, lo * scale + mean, hi * scale + mean

    def backtest(self, step: int | None = None, n_windows: int | None = None) -> BacktestResult:
        """Rolling-origin backtest on the held-out test part, beside naive and seasonal naive."""
        if self._panel is None or self._split is None:
            raise RuntimeError("call fit() before backtest()")
        return self._backtest(self._panel, self._split, step, n_windows)

    def evaluate(
        self,
        frame: pd.DataFrame,
        panel_config: PanelConfig,
        exogenous: pd.DataFrame | None = None,
    ) -> BacktestResult:
        """Backtest this (already trained) forecaster on the held-out end of ``frame``.

        ``panel_config`` defines the holdout, so a champion and a challenger can be compared
        on exactly the same windows. Series unknown to this forecaster are left out.
        """
        if exogenous is not None:
            self._exogenous = exogenous
        known = frame[frame["series_id"].isin(list(self.freqs))]
        panel, _ = exclude_short(
            build_panel(known, self.freqs, panel_config), panel_config, self.window.span
        )
        return self._backtest(panel, chronological_split(panel, panel_config, self.window.span))

    def _backtest(
        self, panel: Panel, split: Split, step: int | None = None, n_windows: int | None = None
    ) -> BacktestResult:
        scaler = self.scaler
        if scaler is None:
            raise RuntimeError("the forecaster is not fitted")
        cov = self._covariates(panel)[0] if self._uses_covariates else None
        w, span = self.window.window, self.window.span

        def predict_fn(
            i: int, inputs: np.ndarray, origins: np.ndarray
        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            window_cov = None
            if cov is not None:
                rows = int(panel.offsets[i]) + origins[:, None] - w + np.arange(span)[None, :]
                window_cov = cov[rows]  # [K, W + H, C]
            idx = np.full(len(inputs), scaler.index(panel.series_ids[i]))
            return self._predict_raw(idx, inputs, window_cov)

        return backtest(
            panel,
            split,
            w,
            self.window.horizon,
            self.spec.season_length,
            predict_fn,
            interval=self.spec.interval,
            step=step,
            n_windows=n_windows,
        )

    def predict(
        self, frame: pd.DataFrame, exogenous: pd.DataFrame | None = None
    ) -> tuple[pd.DataFrame, dict[str, str]]:
        """Forecast the next ``horizon`` steps after each series' last grid point.

        Args:
            exogenous: the exogenous variables over the window and the next ``horizon`` steps.

        Returns:
            Rows ``series_id, ts, step, yhat, yhat_lower, yhat_upper`` and, per series that
            could not be forecast, the reason.
        """
        if self.scaler is None:
            raise RuntimeError("the forecaster is not fitted")
        check_exogenous(self.spec.exogenous, exogenous)
        if exogenous is not None:
            self._exogenous = exogenous
        known = [s for s in frame["series_id"].unique() if s in self.freqs]
        skipped = {
            str(s): "series was not in the training data; retrain to include it"
            for s in frame["series_id"].unique()
            if s not in self.freqs
        }
        if not known:
            return pd.DataFrame(columns=FORECAST_COLUMNS), skipped
        panel = build_panel(frame[frame["series_id"].isin(known)], self.freqs, self.spec.panel)
        w, h = self.window.window, self.window.horizon
        cov, problems = self._covariates(panel, extra=h) if self._uses_covariates else (None, {})
        # Every series that can be forecast goes through the model in one batched call.
        ready: list[int] = []
        inputs: list[np.ndarray] = []
        covs: list[np.ndarray] = []
        for i, sid in enumerate(panel.series_ids):
            y = panel.series_values(i).astype(np.float64)
            if y.size < w or not np.isfinite(y[-w:]).all():
                skipped[sid] = f"the last {w} points contain gaps longer than max_fill"
                continue
            if cov is not None:
                end = int(panel.offsets[i]) + i * h + y.size  # rows are length + h per series
                window_cov = cov[end - w : end + h]
                if not np.isfinite(window_cov).all():
                    skipped[sid] = f"{problems.get(sid, 'covariates missing')}; supply them"
                    continue
                covs.append(window_cov)
            ready.append(i)
            inputs.append(y[-w:])
        if not ready:
            return pd.DataFrame(columns=FORECAST_COLUMNS), skipped
        position = {s: k for k, s in enumerate(self.scaler.series_ids)}
        idx = np.array([position[panel.series_ids[i]] for i in ready], dtype=np.int64)
        yhat, lo, hi = self._predict_raw(idx, np.stack(inputs), np.stack(covs) if covs else None)
        ids: list[str] = []
        stamps: list[pd.Timestamp] = []
        for i in ready:
            last = panel.timestamp(i, int(panel.lengths[i]) - 1)
            step = pd.tseries.frequencies.to_offset(panel.freqs[i])
            ids += [panel.series_ids[i]] * h
            stamps += [last + k * step for k in range(1, h + 1)]
        rows = pd.DataFrame(
            {
                "series_id": ids,
                "ts": stamps,
                "step": np.tile(np.arange(1, h + 1), len(ready)),
                "yhat": yhat.ravel(),
                "yhat_lower": lo.ravel(),
                "yhat_upper": hi.ravel(),
            }
        )
        return rows, skipped

    def save(self, path: str | Path) -> Path:
        """Write weights, config, scalers and intervals as one ``weights_only``-safe file."""
        if self.scaler is None:
            raise RuntimeError("the forecaster is not fitted")
        payload = {
            "format": ARTIFACT_FORMAT,
            "spec": self.spec.to_dict(),
            "model_config": self.model_config.to_dict(),
            "state_dict": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "scaler": self.scaler.to_dict(),
            "exog_scaler": self.exog_scaler.to_dict() if self.exog_scaler else None,
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
            found = payload.get("format") if isinstance(payload, dict) else None
            raise ArtifactError(
                f"{path}: expected format {ARTIFACT_FORMAT!r}, found {found!r}; "
                "retrain the model with this version of seqcast"
            )
        forecaster = cls(ForecasterSpec.from_dict(payload["spec"]))
        try:
            forecaster._build(RecurrentForecasterConfig.from_dict(payload["model_config"]))
            forecaster.model.load_state_dict(payload["state_dict"])
        except (RuntimeError, TypeError, ValueError) as exc:
            raise ArtifactError(f"{path}: weights do not match the config ({exc})") from exc
        forecaster.model.eval()
        forecaster.scaler = SeriesScaler.from_dict(payload["scaler"])
        if payload.get("exog_scaler"):
            forecaster.exog_scaler = ExogenousScaler.from_dict(payload["exog_scaler"])
        forecaster.freqs = dict(payload["freqs"])
        forecaster.residual_quantiles = payload["residual_quantiles"].numpy()
        return forecaster
