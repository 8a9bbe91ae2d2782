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

from forecasting.artifact import ARTIFACT_FORMAT, ForecasterArtifact
from forecasting.backtest import BacktestResult, PredictFn, backtest
from forecasting.covariates import (
    ExogenousScaler,
    check_exogenous,
    fit_covariates,
    raw_covariates,
    refuse_missing_history,
    scale_covariates,
    series_grid,
)
from forecasting.errors import ArtifactError
from forecasting.intervals import residual_quantiles
from forecasting.missing import refuse_missing
from forecasting.models import RecurrentForecasterConfig, build_model
from forecasting.panel import (
    Panel,
    PanelConfig,
    Split,
    build_panel,
    chronological_split,
    exclude_short,
    refit_splits,
)
from forecasting.scaling import SeriesScaler, scale_panel
from forecasting.spec import ForecasterSpec
from forecasting.static import static_table
from forecasting.training import Callback, TrainResult, WindowData, fit, predict
from forecasting.windows import WindowSpec, window_index

FORECAST_COLUMNS = ["series_id", "ts", "step", "yhat", "yhat_lower", "yhat_upper"]

__all__ = ["ARTIFACT_FORMAT", "ArtifactError", "ForecasterSpec", "GlobalForecaster"]


_BUILD_LOCK = threading.Lock()


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
        return self.model_config.n_covariates + self.model_config.n_past_covariates > 0

    def _covariates(self, panel: Panel, extra: int = 0) -> np.ndarray:
        """[sum(length + extra), C] scaled float32 covariates; NaN where still missing."""
        layout = self.spec.covariates
        raw = raw_covariates(panel, layout, self._exogenous, extra)
        return scale_covariates(raw, layout, self.exog_scaler)

    def fit(
        self,
        frame: pd.DataFrame,
        freqs: dict[str, str],
        callbacks: Sequence[Callback] = (),
        exogenous: pd.DataFrame | None = None,
        init_state: dict[str, torch.Tensor] | None = None,
        static: pd.DataFrame | None = None,
        through_end: bool = False,
    ) -> TrainResult:
        """Train on the long frame; keeps the test part of each series for :meth:`backtest`.

        Args:
            exogenous: ``series_id, ts`` and one column per name in ``spec.exogenous`` and
                ``spec.past_covariates``; each is put on the grid under its missing-value
                policy, and a value still missing is refused (CovariateError).
            init_state: start from these weights (fine-tune, "warm start") when every tensor
                matches the model's names and shapes; otherwise train from the seeded
                initialisation. :attr:`warm_start_note` says which and why.
            static: ``series_id, name, value`` per name in ``spec.static_attributes`` (see
                forecasting.static); the model keeps them.
            through_end: train (and scale) on every point, holding nothing out (a refit, see
                forecasting.refit); the newest ``val_size`` points, trained on too, only
                drive the schedule and the divergence check, and residual intervals are
                left as they are.
        """
        check_exogenous(self.spec.covariates.exogenous, exogenous)
        panel, self.excluded = exclude_short(
            build_panel(frame, freqs, self.spec.panel), self.spec.panel, self.window.span
        )
        split = chronological_split(panel, self.spec.panel, self.window.span)
        monitor = split
        if through_end:
            split, monitor = refit_splits(panel, self.spec.panel)
        table = None
        if self.spec.static_attributes:
            table, _ = static_table(panel.series_ids, static, self.spec.static_attributes)
        if self.spec.embed_series or table is not None:
            n_static = 0 if table is None else table.shape[1]
            self._build(self.spec.model_config(len(panel.series_ids), n_static))
        self.warm_start_note = "" if init_state is None else self._warm_start(init_state)
        if table is not None:  # after a warm start: these series' attributes, not the champion's
            assert self.model.static_table is not None
            with torch.no_grad():
                self.model.static_table.copy_(torch.from_numpy(table))
        scaler = SeriesScaler.fit(
            panel.series_ids,
            [panel.series_values(i)[: split.val_start[i]] for i in range(len(panel.series_ids))],
        )
        self.scaler, self.freqs = scaler, {s: freqs[s] for s in panel.series_ids}
        self._panel, self._split, self._exogenous = panel, split, exogenous
        covariates = None
        if self._uses_covariates:
            matrix, self.exog_scaler = fit_covariates(panel, split, self.spec.covariates, exogenous)
            covariates = torch.from_numpy(matrix)
        train, skip_train = window_index(panel, split, self.window, "train")
        val, skip_val = window_index(panel, monitor, self.window, "val")
        point_series = (
            torch.from_numpy(np.repeat(np.arange(len(panel.series_ids)), panel.lengths))
            if self.model_config.n_series
            else None
        )
        data = WindowData(
            torch.from_numpy(scale_panel(panel, scaler)),
            train,
            val,
            self.window,
            covariates,
            point_series,
        )
        result = fit(self.model, data, self.spec.train, callbacks, self.model_config.quantiles)
        if self.spec.intervals == "residual" and not through_end:
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
        self.residual_quantiles = residual_quantiles(self.model, data, self.spec.interval)

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
        return self._backtest(*self.holdout_of(frame, panel_config, exogenous))

    def holdout_of(
        self, frame: pd.DataFrame, panel_config: PanelConfig, exogenous: pd.DataFrame | None = None
    ) -> tuple[Panel, Split]:
        """The panel and split :meth:`evaluate` scores (``exogenous`` kept for predictions)."""
        if exogenous is not None:
            self._exogenous = exogenous
        known = frame[frame["series_id"].isin(list(self.freqs))]
        panel, _ = exclude_short(
            build_panel(known, self.freqs, panel_config), panel_config, self.window.span
        )
        return panel, chronological_split(panel, panel_config, self.window.span)

    @property
    def fitted_holdout(self) -> tuple[Panel, Split] | None:
        """The panel and split of the last :meth:`fit` in this process (:meth:`backtest`'s)."""
        return None if self._panel is None or self._split is None else (self._panel, self._split)

    def _backtest(
        self, panel: Panel, split: Split, step: int | None = None, n_windows: int | None = None
    ) -> BacktestResult:
        w, h = self.window.window, self.window.horizon
        return backtest(panel, split, w, h, self.spec.season_length, self.window_predictor(panel),
                        interval=self.spec.interval, step=step, n_windows=n_windows)  # fmt: skip

    def window_predictor(self, panel: Panel) -> PredictFn:
        """The backtest's ``predict_fn`` over ``panel``: raw-unit windows of series ``i`` ending
        at ``origins`` -> forecast, lower, upper [K, H] (an ensemble combines its members')."""
        scaler = self.scaler
        if scaler is None:
            raise RuntimeError("the forecaster is not fitted")
        cov = None
        if self._uses_covariates:
            cov = self._covariates(panel)
            refuse_missing_history(panel, cov, self.spec.covariates)
            cov = np.nan_to_num(cov)  # left only where the target is missing: never read
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

        return predict_fn

    def predict(
        self, frame: pd.DataFrame, exogenous: pd.DataFrame | None = None
    ) -> tuple[pd.DataFrame, dict[str, str]]:
        """Forecast the next ``horizon`` steps after each series' last grid point.

        Args:
            exogenous: the known-future covariates over the window and the next ``horizon``
                steps, the past-only ones over the window (later values are never read).

        Raises:
            CovariateError: a covariate value is missing: a known-future one over the
                horizon, or one over the window that its missing policy does not fill.

        Returns:
            Rows ``series_id, ts, step, yhat, yhat_lower, yhat_upper`` and, per series that
            could not be forecast, the reason.
        """
        if self.scaler is None:
            raise RuntimeError("the forecaster is not fitted")
        check_exogenous(self.spec.covariates.exogenous, exogenous)
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
        cov = self._covariates(panel, extra=h) if self._uses_covariates else None
        layout = self.spec.covariates
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
                grid = series_grid(panel, i, h)[-(w + h) :]
                refuse_missing(
                    sid, window_cov, grid, layout.names, layout.policies, layout.known_columns, w
                )
                covs.append(np.nan_to_num(window_cov))  # past-only horizon rows: never read
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
        artifact = ForecasterArtifact(
            self.spec, self.model_config, self.model.state_dict(), self.scaler,
            self.exog_scaler, dict(self.freqs), self.residual_quantiles,
        )  # fmt: skip
        return artifact.save(path)

    @classmethod
    def load(cls, path: str | Path) -> GlobalForecaster:
        """Rebuild a forecaster from :meth:`save`'s file without executing any pickled code."""
        return cls.from_artifact(ForecasterArtifact.load(path), path)

    @classmethod
    def from_artifact(cls, artifact: ForecasterArtifact, path: str | Path) -> GlobalForecaster:
        """The forecaster ``artifact`` describes (read from ``path``, named in errors)."""
        forecaster = cls(artifact.spec)
        try:
            forecaster._build(artifact.model_config)
            forecaster.model.load_state_dict(artifact.state_dict)
        except (RuntimeError, TypeError, ValueError) as exc:
            raise ArtifactError(f"{path}: weights do not match the config ({exc})") from exc
        forecaster.model.eval()
        forecaster.scaler, forecaster.exog_scaler = artifact.scaler, artifact.exog_scaler
        forecaster.freqs = artifact.freqs
        forecaster.residual_quantiles = artifact.residual_quantiles
        return forecaster
