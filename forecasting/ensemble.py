"""A median ensemble: several fitted forecasters of the same series, combined as one model.

Every forecast (and every backtest window) is the element-wise median, per series and horizon
step, of the members' own forecasts; the interval bounds are the medians of the members'
bounds. Since each member's lower bound is at most its point forecast (and its upper bound at
least), the medians keep that order too, so the point forecast stays inside its interval.

The members must forecast the same thing: the same series and frequencies, window, horizon,
holdout sizes, season, interval and covariates; they may differ in cell and architecture.
Saved as one ``torch.load(weights_only=True)``-safe file holding each member's artifact.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from forecasting.artifact import ForecasterArtifact, read_payload
from forecasting.backtest import BacktestResult, PredictFn, backtest
from forecasting.errors import ArtifactError
from forecasting.forecaster import FORECAST_COLUMNS, GlobalForecaster
from forecasting.panel import Panel, PanelConfig, Split
from forecasting.spec import ForecasterSpec
from forecasting.windows import WindowSpec

ENSEMBLE_FORMAT = "seqcast-ensemble/1"
COMBINERS = ("median",)
_KEY = ["series_id", "ts", "step"]
_VALUES = ["yhat", "yhat_lower", "yhat_upper"]

__all__ = ["ENSEMBLE_FORMAT", "EnsembleForecaster", "Forecaster", "load_forecaster_file"]


def _median(parts: Sequence[np.ndarray]) -> np.ndarray:
    return np.median(np.stack(parts), axis=0)  # M x [...] -> [...]


def _shared(spec: ForecasterSpec) -> tuple[Any, ...]:
    """What every member of one ensemble must agree on."""
    return (
        spec.model.window,
        spec.model.horizon,
        spec.panel,
        spec.season_length,
        spec.interval,
        spec.exogenous,
        spec.past_covariates,
        spec.covariate_missing,
        spec.covariate_resample,
    )


class EnsembleForecaster:
    """The element-wise median of fitted :class:`GlobalForecaster` members.

    It answers the calls the flows and the pyfunc model make of a forecaster: ``spec``,
    ``window``, ``freqs``, ``predict``, ``backtest``, ``evaluate``, ``save`` and ``load``.

    Args:
        members: two or more fitted forecasters of the same series (see the module docstring).
        labels: what each member is, e.g. ``lstm v3``, kept in the artifact (default: cells).
        combine: how forecasts are combined; only ``median``.

    Raises:
        ValueError: fewer than two members, labels not one per member, an unknown combiner,
            or members that do not forecast the same thing (the message says what differs).
    """

    def __init__(
        self,
        members: Sequence[GlobalForecaster],
        labels: Sequence[str] | None = None,
        combine: str = "median",
    ) -> None:
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least two members, got {len(members)}")
        if combine not in COMBINERS:
            raise ValueError(f"unknown combiner {combine!r}; choose from {list(COMBINERS)}")
        labels = list(labels) if labels is not None else [m.spec.model.cell for m in members]
        if len(labels) != len(members):
            raise ValueError(f"{len(labels)} labels for {len(members)} members")
        first = members[0]
        for label, member in zip(labels[1:], members[1:], strict=True):
            if member.scaler is None or first.scaler is None:
                raise ValueError("every member must be fitted before it joins an ensemble")
            if _shared(member.spec) != _shared(first.spec):
                raise ValueError(
                    f"member {label} differs from {labels[0]} in window, horizon, holdout, "
                    "season, interval or covariates; ensemble models of one group only"
                )
            if member.freqs != first.freqs:
                raise ValueError(f"member {label} was trained on other series than {labels[0]}")
        self.members = list(members)
        self.labels = labels
        self.combine = combine

    @property
    def spec(self) -> ForecasterSpec:
        """The first member's spec: window, horizon, holdout and covariates are the same for
        all (the cell is the first member's; see :attr:`labels` for all of them)."""
        return self.members[0].spec

    @property
    def window(self) -> WindowSpec:
        return self.members[0].window

    @property
    def freqs(self) -> dict[str, str]:
        return self.members[0].freqs

    @property
    def has_holdout(self) -> bool:
        """Every member was fitted in this process, so :meth:`backtest` has the holdout."""
        return all(m.has_holdout for m in self.members)

    def window_predictor(self, panel: Panel) -> PredictFn:
        """The backtest's ``predict_fn``: the median of the members' forecasts and bounds."""
        fns = [m.window_predictor(panel) for m in self.members]

        def predict_fn(
            i: int, inputs: np.ndarray, origins: np.ndarray
        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            outs = [fn(i, inputs, origins) for fn in fns]  # M x (3 x [K, H])
            mid, lo, hi = (_median([o[k] for o in outs]) for k in range(3))
            return mid, lo, hi

        return predict_fn

    def _backtest(
        self, panel: Panel, split: Split, step: int | None = None, n_windows: int | None = None
    ) -> BacktestResult:
        spec = self.spec
        return backtest(
            panel,
            split,
            spec.model.window,
            spec.model.horizon,
            spec.season_length,
            self.window_predictor(panel),
            interval=spec.interval,
            step=step,
            n_windows=n_windows,
        )

    def backtest(self, step: int | None = None, n_windows: int | None = None) -> BacktestResult:
        """Rolling-origin backtest of the median forecasts on the members' held-out part."""
        holdout = self.members[0].fitted_holdout
        if holdout is None or not self.has_holdout:
            raise RuntimeError("fit every member in this process before backtest(); or evaluate()")
        return self._backtest(*holdout, step, n_windows)

    def evaluate(
        self,
        frame: pd.DataFrame,
        panel_config: PanelConfig,
        exogenous: pd.DataFrame | None = None,
    ) -> BacktestResult:
        """Backtest the median forecasts on the held-out end of ``frame`` (see
        :meth:`GlobalForecaster.evaluate`: the same windows a single model is scored on)."""
        holdouts = [m.holdout_of(frame, panel_config, exogenous) for m in self.members]
        return self._backtest(*holdouts[0])

    def predict(
        self, frame: pd.DataFrame, exogenous: pd.DataFrame | None = None
    ) -> tuple[pd.DataFrame, dict[str, str]]:
        """Forecast like :meth:`GlobalForecaster.predict`, each value the members' median.

        A series any member cannot forecast is skipped, with that member's reason.
        """
        outputs = [m.predict(frame, exogenous) for m in self.members]
        skipped: dict[str, str] = {}
        for label, (_, why) in zip(self.labels, outputs, strict=True):
            for sid, reason in why.items():
                if sid not in skipped:
                    skipped[sid] = reason
                elif reason not in skipped[sid]:
                    skipped[sid] = f"{skipped[sid]}; {label}: {reason}"
        base = outputs[0][0]
        base = base[~base["series_id"].isin(list(skipped))].reset_index(drop=True)
        if base.empty:
            return pd.DataFrame(columns=FORECAST_COLUMNS), skipped
        index = pd.MultiIndex.from_frame(base[_KEY])
        aligned = [rows.set_index(_KEY).reindex(index) for rows, _ in outputs]
        out = base[_KEY].copy()
        for column in _VALUES:
            out[column] = _median([a[column].to_numpy(np.float64) for a in aligned])
        return out, skipped

    def save(self, path: str | Path) -> Path:
        """Every member's artifact, the labels and the combiner, as one ``weights_only``-safe
        file (no pickled code)."""
        payload = {
            "format": ENSEMBLE_FORMAT,
            "combine": self.combine,
            "labels": list(self.labels),
            "members": [_artifact_of(m).to_payload() for m in self.members],
        }
        path = Path(path)
        torch.save(payload, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> EnsembleForecaster:
        """Rebuild an ensemble from :meth:`save`'s file without executing any pickled code.

        Raises:
            ArtifactError: not such a file, another format, or inconsistent contents.
        """
        return cls.from_payload(read_payload(path), path)

    @classmethod
    def from_payload(cls, payload: Any, path: str | Path) -> EnsembleForecaster:
        """The ensemble of :meth:`save`'s dict (read from ``path``, named in errors)."""
        if not isinstance(payload, dict) or payload.get("format") != ENSEMBLE_FORMAT:
            found = payload.get("format") if isinstance(payload, dict) else None
            raise ArtifactError(f"{path}: expected format {ENSEMBLE_FORMAT!r}, found {found!r}")
        try:
            members = [
                GlobalForecaster.from_artifact(ForecasterArtifact.from_payload(p, path), path)
                for p in payload["members"]
            ]
            return cls(members, [str(x) for x in payload["labels"]], str(payload["combine"]))
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ArtifactError):
                raise
            raise ArtifactError(f"{path}: inconsistent ensemble artifact ({exc})") from exc


def _artifact_of(member: GlobalForecaster) -> ForecasterArtifact:
    assert member.scaler is not None  # checked when the ensemble was built
    return ForecasterArtifact(
        member.spec, member.model_config, member.model.state_dict(), member.scaler,
        member.exog_scaler, dict(member.freqs), member.residual_quantiles,
    )  # fmt: skip


def load_forecaster_file(path: str | Path) -> Forecaster:
    """A single forecaster's or an ensemble's file, whichever ``path`` holds (one safe read).

    Raises:
        ArtifactError: neither, or inconsistent contents.
    """
    payload = read_payload(path)
    if isinstance(payload, dict) and payload.get("format") == ENSEMBLE_FORMAT:
        return EnsembleForecaster.from_payload(payload, path)
    return GlobalForecaster.from_artifact(ForecasterArtifact.from_payload(payload, path), path)


# What a registered version loads as: one global model, or the median of several.
Forecaster = GlobalForecaster | EnsembleForecaster
