"""The promoted candidate refit on every point up to the last observation (``refit: true``).

A candidate is trained on the data before its validation part, so a champion never saw its
newest ``val_size + test_size`` points. After the promotion checks, the selected recipe is
trained again on all of them (forecasting.refit, ``REFIT_MODE``) in its own child run,
registered, and made champion in place of the selected version, carrying that version's
holdout evidence (flows.tracking.refits). A refit that diverges leaves the selected version
champion, with the reason on it.
"""

from __future__ import annotations

import json

import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.progress import epoch_progress
from flows.series.candidates import EPOCH_LOG_EVERY_S, Candidate
from flows.series.covariates import covariate_tags
from flows.series.data import GroupData
from flows.series.params import ModelGroup
from flows.tracking import plots
from flows.tracking.comparison import log_training_dataset
from flows.tracking.promotion import Decision
from flows.tracking.refits import REFIT_OF_RUN, record_refit, record_refit_failure
from flows.tracking.registry import log_forecaster
from flows.tracking.runs import EpochLogger, child_run, flatten
from forecasting.forecaster import GlobalForecaster
from forecasting.refit import RefitMode, refit
from forecasting.training import Callback, TrainingDiverged, TrainResult

# A short fine-tune from the selected weights: as accurate as a refit from scratch for the
# selected run's epochs, or more, in a third of the time (bench/refit.py, bench/ACCURACY.md).
REFIT_MODE: RefitMode = "finetune"
FINETUNE_EPOCHS = 2
# The selected run's metrics a refit run carries as its holdout evidence.
HOLDOUT_METRICS = ("backtest_", "naive_", "seasonal_naive_")


@task(cache_policy=NO_CACHE)
def refit_champion(
    group: ModelGroup,
    best: Candidate,
    data: GroupData,
    decision: Decision,
    parent_run_id: str,
    tags: dict[str, str],
) -> Decision:
    """Refit ``best`` on every point when the group asks and it was promoted; the decision
    with the refit version (now champion) or why the refit failed (``best`` stays champion)."""
    if not group.refit or not decision.promoted or decision.version != best.version:
        return decision
    client = MlflowClient()
    if not isinstance(best.forecaster, GlobalForecaster):
        # Each member would need its own refit and the ensemble registered anew: not built.
        why = "an ensemble champion is not refit (its members would each need one)"
        get_run_logger().warning("%s: %s; v%s stays champion", group.name, why, best.version)
        return record_refit_failure(client, group.registered_model, decision, why)
    selected = client.get_run(best.run_id).data.metrics
    evidence = {k: v for k, v in selected.items() if k.startswith(HOLDOUT_METRICS)}
    # The epoch whose weights the selected run kept (its best one, unless restore kept another).
    epochs = best.forecaster.spec.train.max_epochs
    best_epoch = int(selected.get("kept_epoch", selected.get("best_epoch", epochs)))
    run_tags = {**tags, "cell": best.cell, REFIT_OF_RUN: best.run_id, "refit.mode": REFIT_MODE}
    with child_run(parent_run_id, f"{group.name}-{best.cell}-refit", run_tags) as run:
        run_id = run.info.run_id
        mlflow.log_params(
            {
                "group": group.name,
                "registered_model": group.registered_model,
                "refit.of_version": best.version,
                "refit.mode": REFIT_MODE,
                "refit.selected_best_epoch": best_epoch,
            }
        )
        log_training_dataset(group, data)
        trained = _train(
            group, best, data, best_epoch, EpochLogger(client, run_id, every_s=EPOCH_LOG_EVERY_S)
        )
        if not isinstance(trained, str):
            forecaster, result = trained
            mlflow.log_params(flatten(forecaster.spec.to_dict()))
            version = _log_refit(group, best, forecaster, result, evidence, data)
            get_run_logger().info(
                "%s/%s: v%s refit on every point as v%s in %.1fs",
                group.name,
                best.cell,
                best.version,
                version,
                result.seconds,
            )
            on_version = _version_tags(best, forecaster, data, evidence)
            return record_refit(client, group.registered_model, decision, version, on_version)
        mlflow.set_tag("failure", trained)
    client.set_terminated(run_id, "FAILED")
    return record_refit_failure(client, group.registered_model, decision, trained)


def _train(
    group: ModelGroup, best: Candidate, data: GroupData, best_epoch: int, epochs: EpochLogger
) -> tuple[GlobalForecaster, TrainResult] | str:
    """The refit (per-epoch metrics into the active run), or why it failed."""
    assert isinstance(best.forecaster, GlobalForecaster)  # refit_champion's check
    callbacks: list[Callback] = [
        epochs,
        *epoch_progress(f"{group.name} refit", best.forecaster.spec),
    ]
    try:
        return refit(
            best.forecaster,
            best_epoch,
            data.frame,
            data.freqs,
            REFIT_MODE,
            callbacks,
            data.exogenous,
            data.static,
            finetune_epochs=FINETUNE_EPOCHS,
        )
    except (TrainingDiverged, ValueError) as exc:  # ValueError: e.g. no window to train on
        kind = "diverged" if isinstance(exc, TrainingDiverged) else "failed"
        why = f"refit {kind}: {exc}"
        get_run_logger().error(
            "%s/%s: %s; v%s stays champion", group.name, best.cell, why, best.version
        )
        return why
    finally:
        epochs.flush()


def _log_refit(
    group: ModelGroup,
    best: Candidate,
    forecaster: GlobalForecaster,
    result: TrainResult,
    evidence: dict[str, float],
    data: GroupData,
) -> str:
    """Metrics (the selected run's holdout ones and the refit's own), the selected run's
    per-series backtest (drift compares with it), data and loss curve; register it."""
    mlflow.log_metrics(
        {
            **evidence,
            "best_epoch": float(result.best_epoch),
            "epochs_run": float(len(result.history)),
            "train_seconds": result.seconds,
            "windows_per_second": result.windows_seen / max(result.seconds, 1e-9),
        }
    )
    mlflow.log_param("precision_used", result.precision)
    # Whether the fine-tune really started from the selected weights, and why not otherwise.
    mlflow.set_tag("refit.note", forecaster.warm_start_note or "from the seeded initialisation")
    mlflow.log_dict(
        {
            **forecaster.data_stats,
            "data_end": _data_end(data),
            "device": result.device,
            "excluded_series": forecaster.excluded,
            "refit_of_run": best.run_id,
        },
        "data/training_data.json",
    )
    mlflow.log_text(best.backtest.per_series.to_csv(index=False), "backtest/per_series.csv")
    fig = plots.loss_curves(result.history, f"{group.name} {best.cell} refit")
    mlflow.log_figure(fig, "plots/loss_curve.png")
    plots.close(fig)
    return str(
        log_forecaster(forecaster, group.registered_model, data.frame, data.exogenous).version
    )


def _data_end(data: GroupData) -> str:
    return pd.Timestamp(data.frame["ts"].max()).isoformat() if len(data.frame) else ""


def _version_tags(
    best: Candidate, forecaster: GlobalForecaster, data: GroupData, evidence: dict[str, float]
) -> dict[str, str]:
    """What the refit version carries: covariates, link, data end and points, the selected
    run's holdout metrics (``backtest_mase`` ... as the candidates have them)."""
    spec = forecaster.spec
    tags = {k: v or "-" for k, v in covariate_tags(spec).items()}
    tags.update(
        {
            REFIT_OF_RUN: best.run_id,
            "refit.mode": REFIT_MODE,
            "refit.epochs": str(spec.train.max_epochs),
            "refit.data_end": _data_end(data),
            "refit.points": str(forecaster.data_stats["points"]),
            "refit.holdout_metrics": json.dumps(evidence, sort_keys=True)[:5000],
        }
    )
    for key in ("backtest_mase", "backtest_smape"):
        if key in evidence:
            tags[key] = f"{evidence[key]:.4f}"
    return tags
