"""The production topology, together: a Prefect server, a process worker polling the
``seqcast`` work pool, an MLflow tracking server and PostgreSQL. The deployments are registered
from prefect.yaml with ``prefect deploy --all``; runs created through the API execute on the
worker (from SEQCAST_HOME, as the pull step says), ingest, train and write forecasts to
PostgreSQL, and a failed run sends the alert of its project file to a local webhook."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sqlalchemy import text

from db import make_engine
from tests.conftest import _postgres_url
from tests.support import REPO
from tests.support.groups import tiny_groups, write_project
from tests.support.mlflow_server import running_mlflow_server
from tests.support.prefect_server import BIN, post, request, start, stop
from tests.support.receivers import Received, webhook_receiver

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def prefect(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(BIN / "prefect"), "--no-prompt", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def run_deployment(env: dict[str, str], name: str, params: dict[str, Any], log: Path) -> Any:
    """Create a run of ``<flow>/<name>`` through the REST API; wait for its end on the worker."""
    deployment = next(d for d in post(env, "/deployments/filter", {}) if d["name"] == name)
    run = post(env, f"/deployments/{deployment['id']}/create_flow_run", {"parameters": params})
    deadline = time.monotonic() + 420
    while run["state_type"] not in TERMINAL:
        assert time.monotonic() < deadline, f"{name}: {run['state_name']}\n{log.read_text()}"
        time.sleep(2)
        run = request(env, "GET", f"/flow_runs/{run['id']}")
    return run


@pytest.fixture
def topology(
    prefect_server: dict[str, str], database_url: str, tmp_path: Path
) -> Iterator[tuple[dict[str, str], Received, Path]]:
    """MLflow server + registered deployments + a worker; yields its env, the webhook's
    receiver and the worker's log."""
    with (
        running_mlflow_server(_postgres_url(), tmp_path) as mlflow_uri,
        webhook_receiver() as hook,
    ):
        pool = ("work-pool", "create", "seqcast", "--type", "process", "--overwrite")
        prefect(prefect_server, *pool)
        prefect(prefect_server, "deploy", "--all")
        env = {
            **prefect_server,
            "SEQCAST_HOME": str(REPO),  # the pull step's working directory
            "SEQCAST_DATABASE_URL": database_url,
            "MLFLOW_TRACKING_URI": mlflow_uri,
            "SEQCAST_EXPERIMENT": "seqcast-topology",
            "PREFECT_WORKER_QUERY_SECONDS": "2",
            "PREFECT_LOGGING_LEVEL": "INFO",
        }
        log = tmp_path / "worker.log"
        # Started from elsewhere: the runs must still find the code through SEQCAST_HOME.
        worker = start(
            [str(BIN / "prefect"), "worker", "start", "--pool", "seqcast", "--type", "process"],
            env,
            log,
            cwd=tmp_path,
        )
        try:
            yield env, hook, log
        finally:
            stop(worker)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_worker_on_the_pool_runs_the_deployments_and_a_failure_alerts(
    topology: tuple[dict[str, str], Received, Path], database_url: str, tmp_path: Path
) -> None:
    env, hook, log = topology
    prices = tiny_groups(cells=["gru"])[1]
    project = write_project(
        tmp_path / "seqcast.yaml", [prices], alerts={"webhook": {"url": hook.url}}
    )
    config = {"config": str(project)}

    ingested = run_deployment(env, "ingest", {"params": {"bundled": ["stocks"]}}, log)
    assert ingested["state_type"] == "COMPLETED", log.read_text()[-4000:]
    assert ingested["work_pool_name"] == "seqcast" and ingested["infrastructure_pid"]
    trained = run_deployment(env, "train-forecasters", {"params": config}, log)
    assert trained["state_type"] == "COMPLETED", log.read_text()[-4000:]
    client = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    (version,) = client.search_model_versions("name = 'seqcast-prices'")
    experiment = client.get_experiment_by_name("seqcast-topology")
    assert experiment is not None
    logged = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.flow_run_id = '{trained['id']}'"
    )
    assert version.run_id in {r.info.run_id for r in logged}  # logged by that flow run
    if not client.get_registered_model("seqcast-prices").aliases:
        # The tiny model may not beat seasonal naive: champion by hand, as an operator would.
        client.set_registered_model_alias("seqcast-prices", "champion", version.version)

    forecast = run_deployment(env, "forecast", {"params": config}, log)
    assert forecast["state_type"] == "COMPLETED", log.read_text()[-4000:]
    engine = make_engine(database_url)
    with engine.connect() as conn:
        runs = pd.read_sql(text("SELECT run_id, model_name, details FROM forecast_runs"), conn)
        rows = conn.execute(text("SELECT COUNT(*) FROM forecasts")).scalar_one()
    engine.dispose()
    assert list(runs["model_name"]) == ["seqcast-prices"]
    details = runs["details"][0]
    details = details if isinstance(details, dict) else json.loads(details)
    assert details["flow_run_id"] == forecast["id"]  # written by the run the API created
    assert rows == 5 * prices.horizon  # five price series, five steps each
    assert hook.items == []  # nothing failed, nothing skipped

    failed = run_deployment(env, "forecast", {"params": {**config, "only": ["plant"]}}, log)
    assert failed["state_type"] == "FAILED"
    (alert,) = [item["json"]["alert"] for item in hook.wait(1)]
    assert alert["kind"] == "failed" and alert["flow"] == "forecast"
    assert alert["flow_run_id"] == failed["id"]
    assert "unknown group(s) ['plant']" in alert["message"]
