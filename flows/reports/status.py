"""``seqcast status``: what is in the database, which models are champions, what runs next.

Reads the database and the MLflow registry; asks the Prefect API for scheduled runs only
when ``PREFECT_API_URL`` names a server. Each part that cannot be read says why instead of
failing the whole status.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
from sqlalchemy import Engine, text

from db.migrate import require_current
from flows.settings import Settings

CHAMPION_METRICS = (
    "backtest_mase",
    "backtest_smape",
    "backtest_mae",
    "backtest_coverage",
    "seasonal_naive_mase",
)

SERIES_SQL = """
SELECT s.kind, COUNT(DISTINCT s.series_id) AS series,
       COUNT(DISTINCT CASE WHEN s.active = 1 THEN s.series_id END) AS active,
       COUNT(o.ts) AS observations, MIN(o.ts) AS first_ts, MAX(o.ts) AS last_ts
FROM series s LEFT JOIN observations o ON o.series_id = s.series_id
GROUP BY s.kind ORDER BY s.kind
"""

INGEST_SQL = """
SELECT batch_id, source, status, received, accepted, rejected, finished_at
FROM ingest_batches ORDER BY finished_at DESC, batch_id DESC LIMIT 3
"""

LAST_FORECAST_SQL = """
SELECT f.series_id, r.run_id, r.model_name, r.model_version, r.issued_at, r.created_at,
       COUNT(*) AS n_rows, MAX(f.ts) AS until
FROM forecasts f JOIN forecast_runs r ON r.run_id = f.run_id
WHERE r.run_id = (SELECT MAX(f2.run_id) FROM forecasts f2 WHERE f2.series_id = f.series_id)
GROUP BY f.series_id, r.run_id, r.model_name, r.model_version, r.issued_at, r.created_at
ORDER BY f.series_id
"""

TIME_COLUMNS = ("first_ts", "last_ts", "finished_at", "issued_at", "created_at", "until")


@dataclass
class Status:
    """Everything ``seqcast status`` shows; ``notes`` say what could not be read and why."""

    series: pd.DataFrame = field(default_factory=pd.DataFrame)
    ingests: pd.DataFrame = field(default_factory=pd.DataFrame)
    champions: list[dict[str, Any]] = field(default_factory=list)
    last_forecasts: pd.DataFrame = field(default_factory=pd.DataFrame)
    scheduled: list[dict[str, Any]] | None = None
    groups: list[dict[str, Any]] = field(default_factory=list)
    unconfigured: list[str] = field(default_factory=list)
    overlaps: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _query(engine: Engine, sql: str) -> pd.DataFrame:
    with engine.connect() as conn:
        frame = pd.read_sql(text(sql), conn)
    for col in TIME_COLUMNS:
        if col in frame.columns:
            frame[col] = pd.to_datetime(frame[col], utc=True, format="ISO8601")
    return frame


def champions(tracking_uri: str) -> list[dict[str, Any]]:
    """Each ``seqcast-*`` registered model's champion version with its run's metrics."""
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient()
    out = []
    for model in client.search_registered_models(filter_string="name LIKE 'seqcast-%'"):
        versions = client.search_model_versions(f"name = '{model.name}'")
        row: dict[str, Any] = {"model": model.name, "versions": len(versions)}
        try:
            version = client.get_model_version_by_alias(model.name, "champion")
        except MlflowException:
            row.update(champion="none")
            out.append(row)
            continue
        run = client.get_run(version.run_id) if version.run_id else None
        metrics = run.data.metrics if run else {}
        row.update(
            champion=f"v{version.version}",
            cell=(run.data.params.get("model.cell", "?") if run else "?"),
            since=pd.Timestamp(version.creation_timestamp, unit="ms", tz="UTC"),
            run_id=version.run_id,
            **{k: metrics.get(k, math.nan) for k in CHAMPION_METRICS},
        )
        out.append(row)
    return out


def scheduled_runs(api_url: str, limit: int = 10) -> list[dict[str, Any]]:
    """The next scheduled flow runs on the Prefect server at ``api_url``."""
    base = api_url.rstrip("/")
    with httpx.Client(base_url=base, timeout=10) as client:
        deployments = client.post("/deployments/filter", json={"limit": 200})
        deployments.raise_for_status()
        names = {d["id"]: d["name"] for d in deployments.json()}
        runs = client.post(
            "/flow_runs/filter",
            json={
                "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}},
                "sort": "EXPECTED_START_TIME_ASC",
                "limit": limit,
            },
        )
        runs.raise_for_status()
    return [
        {
            "deployment": names.get(r.get("deployment_id"), r.get("deployment_id") or "-"),
            "flow_run": r["name"],
            "expected_start": pd.Timestamp(r["expected_start_time"]).tz_convert("UTC"),
        }
        for r in runs.json()
    ]


def project_groups(status: Status, engine: Engine, project_path: Path | None) -> None:
    """The project file's groups with their series, and the series no group (or two) takes."""
    from db.observations import list_series
    from flows.project import load_project
    from flows.series.groups import assign_series

    if project_path is None:
        status.notes.append(
            "no project file (./seqcast.yaml, --config or SEQCAST_CONFIG): no groups are "
            "configured, so nothing is trained or forecast; `seqcast init` writes one"
        )
        return
    project = load_project(project_path)
    assignment = assign_series(project.groups, list_series(engine))
    status.groups = [
        {"group": g.name, "select": g.select.describe(), "horizon": g.horizon,
         "series": len(assignment.members[g.name])}
        for g in project.groups
    ]  # fmt: skip
    status.unconfigured = assignment.unconfigured
    status.overlaps = assignment.overlaps


def collect(engine: Engine, settings: Settings, project_path: Path | None = None) -> Status:
    """Read every part of the status; a part that fails becomes a note."""
    require_current(engine)  # an unmigrated or unreachable database is a user error
    status = Status()
    status.series = _query(engine, SERIES_SQL)
    project_groups(status, engine, project_path)
    status.ingests = _query(engine, INGEST_SQL)
    status.last_forecasts = _query(engine, LAST_FORECAST_SQL)
    try:
        status.champions = champions(settings.mlflow_tracking_uri)
    except Exception as exc:  # any store error: the rest of the status is still useful
        status.notes.append(f"MLflow registry at {settings.mlflow_tracking_uri} unreadable: {exc}")
    if settings.prefect_api_url is None:
        status.notes.append(
            "no Prefect server configured (PREFECT_API_URL unset): scheduled runs are not "
            "known; `seqcast serve` runs prefect.yaml's schedules in-process"
        )
    else:
        try:
            status.scheduled = scheduled_runs(settings.prefect_api_url)
        except httpx.HTTPError as exc:
            status.notes.append(f"Prefect API at {settings.prefect_api_url} unreachable: {exc}")
    return status
