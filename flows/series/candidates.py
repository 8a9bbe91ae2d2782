"""One candidate of a model group: train one cell type, backtest it, log it, register it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.progress import epoch_progress
from flows.series.covariates import covariate_tags
from flows.series.data import GroupData
from flows.series.params import ModelGroup
from flows.series.results import CandidateResult
from flows.series.torchrun import fit_with_torchrun, processes_for
from flows.tracking import plots
from flows.tracking.comparison import log_horizon_errors, log_training_dataset
from flows.tracking.lifecycle import champion_weights
from flows.tracking.registry import log_forecaster
from flows.tracking.runs import EpochLogger, child_run, flatten, log_step_metric
from forecasting.backtest import BacktestResult
from forecasting.ensemble import Forecaster
from forecasting.forecaster import GlobalForecaster
from forecasting.spec import ForecasterSpec
from forecasting.training import Callback, TrainingDiverged, TrainResult

# Per-epoch metrics reach MLflow at most this often (one store commit per send).
EPOCH_LOG_EVERY_S = 5.0


def score_of(summary: dict[str, float]) -> float:
    """Lower is better: mean MASE across series, sMAPE where MASE is undefined."""
    for key in ("mase", "smape"):
        value = summary.get(key, math.nan)
        if math.isfinite(value):
            return value
    return math.inf  # no backtest window: never better than anything measured


@dataclass
class Candidate:
    """A trained and registered model version with its backtest."""

    cell: str
    run_id: str
    version: str
    backtest: BacktestResult
    forecaster: Forecaster = field(repr=False)  # a GlobalForecaster, or a median ensemble

    @property
    def score(self) -> float:
        """Lower is better: the backtest's mean MASE (sMAPE where MASE is undefined)."""
        return score_of(self.backtest.summary["model"])

    def result(self) -> CandidateResult:
        """What the flow reports of it: version, run and the flat backtest metrics."""
        return CandidateResult(
            self.cell, self.version, self.run_id, backtest_metrics(self.backtest)
        )


def backtest_metrics(bt: BacktestResult) -> dict[str, float]:
    """Flat metric names, the same keys for every model: ``backtest_*`` and the baselines'."""
    prefix = {"model": "backtest", "naive": "naive", "seasonal_naive": "seasonal_naive"}
    out = {}
    for method, values in bt.summary.items():
        for metric, value in values.items():
            if math.isfinite(value):
                out[f"{prefix[method]}_{metric}"] = value
    out["backtest_windows"] = float(bt.n_windows)
    return out


@task(cache_policy=NO_CACHE)
def train_candidate(
    group: ModelGroup, cell: str, data: GroupData, parent_run_id: str, tags: dict[str, str]
) -> Candidate | None:
    """Train one cell type in its own MLflow child run; register it unless training diverged."""
    logger = get_run_logger()
    spec = group.spec(cell)
    forecaster = GlobalForecaster(spec)
    client = MlflowClient()
    with child_run(parent_run_id, f"{group.name}-{cell}", {**tags, "cell": cell}) as run:
        run_id = run.info.run_id
        mlflow.log_params(flatten(spec.to_dict()))
        mlflow.log_params({"group": group.name, "registered_model": group.registered_model})
        mlflow.set_tags(covariate_tags(spec))
        mlflow.set_tag("attributes", ",".join(spec.static_attributes))
        nproc = processes_for(group.processes)
        mlflow.log_param("processes", nproc)
        log_training_dataset(group, data)
        epochs = EpochLogger(client, run_id, every_s=EPOCH_LOG_EVERY_S)
        callbacks: list[Callback] = [epochs, *epoch_progress(f"{group.name} {cell}", spec)]
        init_state, note = _warm_start_weights(group, cell, nproc)
        try:
            if nproc > 1:
                forecaster, result = fit_with_torchrun(
                    spec, data.frame, data.freqs, nproc, callbacks,
                    exogenous=data.exogenous, static=data.static,
                )  # fmt: skip
            else:
                result = forecaster.fit(
                    data.frame,
                    data.freqs,
                    callbacks,
                    data.exogenous,
                    init_state=init_state,
                    static=data.static,
                )
                if init_state is not None:
                    note = f"{forecaster.warm_start_note} ({note})"
            if group.warm_start:
                mlflow.set_tags({"warm_start": str(init_state is not None).lower()})
                mlflow.set_tag("warm_start_note", note[:4000])
                logger.info("%s/%s: %s", group.name, cell, note)
        except TrainingDiverged as exc:
            epochs.flush()
            logger.error("%s/%s diverged: %s", group.name, cell, exc)
            mlflow.set_tag("failure", str(exc))
        else:
            epochs.flush()
            candidate = _finish_candidate(
                group, cell, spec, forecaster, result, run_id, client, data
            )
            log_horizon_errors(client, run_id, forecaster, data.frame, f"{group.name} {cell}",
                               data.exogenous, candidate.backtest.per_step)  # fmt: skip
            return candidate
    # Only now: leaving start_run's context marks the run FINISHED.
    client.set_terminated(run_id, "FAILED")
    return None


def _warm_start_weights(group: ModelGroup, cell: str, nproc: int) -> tuple[Any, str]:
    """The champion's weights when the group asks for a warm start, and a note saying why."""
    if not group.warm_start:
        return None, "from scratch (warm_start off)"
    if nproc > 1:
        return None, "from scratch: warm start is not supported under torchrun"
    champion, why = champion_weights(group.registered_model, cell)
    if champion is None:
        return None, why
    if champion.spec.model.cell != cell:
        return None, f"from scratch: {why} is a {champion.spec.model.cell}, not a {cell}"
    return champion.state_dict(), why


def _finish_candidate(
    group: ModelGroup,
    cell: str,
    spec: ForecasterSpec,
    forecaster: GlobalForecaster,
    result: TrainResult,
    run_id: str,
    client: MlflowClient,
    data: GroupData,
) -> Candidate:
    """Backtest, log metrics and figures, and register, inside the candidate's active run."""
    log_step_metric(client, run_id, "grad_norm_step", result.grad_norms)
    # A model trained by torchrun comes back as an artifact: score it on the same holdout.
    bt = (
        forecaster.backtest()
        if forecaster.has_holdout
        else forecaster.evaluate(data.frame, spec.panel, data.exogenous)
    )
    metrics = backtest_metrics(bt)
    metrics.update(
        best_epoch=float(result.best_epoch),
        kept_epoch=float(result.kept_epoch),  # whose weights it has (TrainConfig.restore)
        epochs_run=float(len(result.history)),
        train_seconds=result.seconds,
        windows_per_second=result.windows_seen / max(result.seconds, 1e-9),
    )
    mlflow.log_metrics(metrics)
    # What the training forward pass ran in (train.precision "auto" resolved on the device).
    mlflow.log_param("precision_used", result.precision)
    mlflow.log_dict(
        {
            **forecaster.data_stats,
            "excluded_series": forecaster.excluded,
            "device": result.device,
        },
        "data/training_data.json",
    )
    mlflow.log_text(bt.per_series.to_csv(index=False), "backtest/per_series.csv")
    _log_figures(f"{group.name} {cell}", bt, result, spec.train.clip_norm)
    version = log_forecaster(forecaster, group.registered_model, data.frame, data.exogenous)
    for key, value in covariate_tags(spec).items():
        client.set_model_version_tag(group.registered_model, version.version, key, value or "-")
    for key in ("backtest_mase", "backtest_smape"):
        if key in metrics:
            client.set_model_version_tag(
                group.registered_model, version.version, key, f"{metrics[key]:.4f}"
            )
    get_run_logger().info(
        "%s/%s: version %s, MASE %.3f (seasonal naive %.3f), %d epochs in %.1fs",
        group.name,
        cell,
        version.version,
        metrics.get("backtest_mase", math.nan),
        metrics.get("seasonal_naive_mase", math.nan),
        len(result.history),
        result.seconds,
    )
    return Candidate(cell, run_id, str(version.version), bt, forecaster)


def _log_figures(title: str, bt: BacktestResult, result: TrainResult, clip_norm: float) -> None:
    """The last backtest window, the loss curves and the gradient norms, into the active run."""
    for name, fig in (
        (
            "forecast_vs_actual",
            plots.forecast_vs_actual(bt.examples, f"{title}: last backtest window"),
        ),
        ("loss_curve", plots.loss_curves(result.history, title)),
        ("grad_norm", plots.grad_norms(result.grad_norms, clip_norm, title)),
    ):
        mlflow.log_figure(fig, f"plots/{name}.png")
        plots.close(fig)
