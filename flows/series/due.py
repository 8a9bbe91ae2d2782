"""When a group is due for retraining: no champion, an old champion, or a drifted one.

Drift compares a champion's live error (its own forecasts whose actuals have arrived since,
from ``forecast_vs_actual``) with the same series' backtest error logged at training time.
Both the ``pipeline`` flow and the hourly drift check of ``train-forecasters`` decide here.
"""

from __future__ import annotations

import datetime as dt
import math
import tempfile
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from db import make_engine
from db.accuracy import live_errors
from flows.series.groups import groups_to_run
from flows.series.params import ModelGroup, TrainParams
from flows.series.results import GroupFailure
from flows.settings import Settings
from flows.tracking.lifecycle import CHAMPION
from flows.tracking.registry import get_alias


def backtest_mae(version: ModelVersion) -> pd.Series:
    """The version's backtest MAE per series (its run's ``backtest/per_series.csv``)."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = mlflow.artifacts.download_artifacts(
                run_id=version.run_id, artifact_path="backtest/per_series.csv", dst_path=tmp
            )
        except (MlflowException, OSError):
            return pd.Series(dtype="float64")
        frame = pd.read_csv(Path(path))
    model = frame[frame["method"] == "model"]
    return model.set_index(model["series_id"].astype(str))["mae"].astype("float64")


def drift(group: ModelGroup, champion: ModelVersion, ratio: float, min_actuals: int) -> str | None:
    """Why the champion's live error has drifted, or None.

    Live MAE per series comes from ``forecast_vs_actual`` (the champion's own forecasts whose
    actuals have arrived since), compared with the same series' backtest MAE.
    """
    engine = make_engine(Settings.from_env().database_url)
    try:
        live = live_errors(engine, group.registered_model, str(champion.version))
    finally:
        engine.dispose()
    live = live[live["n"] >= min_actuals]
    if live.empty:
        return None
    reference = backtest_mae(champion)
    worst: tuple[float, str] | None = None
    for row in live.itertuples():
        ref = reference.get(row.series_id)
        if ref is None or not ref > 0:
            continue
        found = row.mae / ref
        if found > ratio and (worst is None or found > worst[0]):
            worst = (
                found,
                f"{row.series_id}: live MAE {row.mae:.4g} over {row.n} actuals is "
                f"{found:.2f}x its backtest MAE {ref:.4g} (threshold {ratio}x)",
            )
    return None if worst is None else worst[1]


def retrain_due(
    client: MlflowClient,
    group: ModelGroup,
    after_hours: float,
    drift_ratio: float | None = None,
    drift_min_actuals: int = 12,
) -> tuple[bool, str]:
    """A group is due when it has no champion, its champion is older than ``after_hours``, or
    (with ``drift_ratio``) the champion's error on newly arrived actuals has drifted."""
    current = get_alias(client, group.registered_model, CHAMPION)
    if current is None:
        return True, "no champion"
    created = dt.datetime.fromtimestamp(current.creation_timestamp / 1000, dt.UTC)
    age_h = (dt.datetime.now(dt.UTC) - created).total_seconds() / 3600
    if age_h >= after_hours:
        return True, f"champion v{current.version} is {age_h:.1f} h old"
    if drift_ratio is not None:
        drifted = drift(group, current, drift_ratio, drift_min_actuals)
        if drifted is not None:
            return True, f"champion v{current.version} drifted: {drifted}"
    if math.isinf(after_hours):
        return False, f"champion v{current.version}: no drift"
    return False, f"champion v{current.version} is {age_h:.1f} h old (< {after_hours} h), no drift"


def drifted_groups(
    params: TrainParams,
) -> tuple[list[ModelGroup], list[GroupFailure], dict[str, str]]:
    """The groups of ``params`` to retrain in a drift check: no champion, or a drifted one.

    The selection is resolved from the catalog alone first (no observations read); only the
    groups found due are then resolved with their data, as a full retrain would.

    Returns:
        The due groups (ready to train), the groups that could not be resolved, and the
        decision for every group (``retrain: why`` or ``no retrain: why``).
    """
    selected, unresolved = groups_to_run(params, "retrain", with_data=False)
    client = MlflowClient()
    decisions: dict[str, str] = {}
    for group in selected:
        is_due, why = retrain_due(
            client, group, math.inf, params.drift_ratio, params.drift_min_actuals
        )
        decisions[group.name] = f"{'retrain' if is_due else 'no retrain'}: {why}"
    names = [n for n, d in decisions.items() if d.startswith("retrain:")]
    if not names:
        return [], unresolved, decisions
    if params.groups is not None:
        return [g for g in params.groups if g.name in names], unresolved, decisions
    due, failed = groups_to_run(params.model_copy(update={"only": names}), "retrain")
    return due, [*unresolved, *failed], decisions
