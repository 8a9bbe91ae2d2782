"""The ``pipeline`` flow: ingest, retrain the groups that are due, forecast."""

from __future__ import annotations

import datetime as dt
from typing import Any

from mlflow.tracking import MlflowClient
from prefect import flow, get_run_logger

from flows.checks import check_tracking
from flows.forecast import forecast
from flows.ingest import ingest
from flows.params import ForecastParams, ModelGroup, PipelineParams, TrainParams
from flows.tracking import get_alias
from flows.train import CHAMPION, train_forecasters


def retrain_due(client: MlflowClient, group: ModelGroup, after_hours: float) -> tuple[bool, str]:
    """A group is due when it has no champion or its champion is older than ``after_hours``."""
    current = get_alias(client, group.registered_model, CHAMPION)
    if current is None:
        return True, "no champion"
    created = dt.datetime.fromtimestamp(current.creation_timestamp / 1000, dt.UTC)
    age_h = (dt.datetime.now(dt.UTC) - created).total_seconds() / 3600
    if age_h >= after_hours:
        return True, f"champion v{current.version} is {age_h:.1f} h old"
    return False, f"champion v{current.version} is {age_h:.1f} h old (< {after_hours} h)"


@flow(name="pipeline", log_prints=True)
def pipeline(params: PipelineParams | None = None) -> dict[str, Any]:
    """Ingest configured sources, retrain when due, then forecast every group."""
    params = params or PipelineParams()
    logger = get_run_logger()
    summary: dict[str, Any] = {}
    if params.ingest.paths or params.ingest.bundled:
        summary["ingest"] = ingest(params.ingest)
    check_tracking()
    client = MlflowClient()
    due: list[ModelGroup] = []
    for group in params.groups:
        is_due, why = retrain_due(client, group, params.retrain_after_hours)
        logger.info("%s: %s retrain (%s)", group.name, "will" if is_due else "will not", why)
        if is_due:
            due.append(group)
    summary["train"] = train_forecasters(TrainParams(groups=due)) if due else {}
    summary["forecast"] = forecast(ForecastParams(groups=params.groups))
    return summary
