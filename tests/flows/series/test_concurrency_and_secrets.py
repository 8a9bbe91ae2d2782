"""Concurrent flows on one database, and credentials that never leave the environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import text

from db import make_engine
from flows.series.ingest import ingest
from flows.series.params import IngestParams, PipelineParams, TrainParams
from flows.series.pipeline import pipeline
from flows.series.train import train_forecasters
from tests.support import REPO
from tests.support.groups import tiny_groups, write_project

ROOT = REPO
pytestmark = pytest.mark.slow


def _api_url() -> str:
    from prefect.settings import PREFECT_API_URL

    return str(PREFECT_API_URL.value())


def _next_days_csv(url: str, path: Path) -> int:
    """A file of one new business day per stock, after the last stored one."""
    engine = make_engine(url)
    with engine.connect() as conn:
        last = pd.read_sql(
            text("SELECT series_id, MAX(ts) AS ts FROM observations GROUP BY series_id"), conn
        )
    engine.dispose()
    last["ts"] = pd.to_datetime(last["ts"], utc=True, format="ISO8601") + pd.offsets.BDay(1)
    last["value"] = 100.0
    last["ts"] = last["ts"].map(lambda t: t.isoformat())
    last.to_csv(path, index=False)
    return len(last)


def test_two_forecasts_and_an_ingest_at_once(service_env: dict[str, str], tmp_path: Path) -> None:
    url = service_env["SEQCAST_DATABASE_URL"]
    ingest(IngestParams(bundled=["stocks"]))
    prices = tiny_groups()[1]
    train_forecasters(TrainParams(groups=[prices]))
    write_project(tmp_path / "seqcast.yaml", [prices])  # what the commands below read
    new_rows = _next_days_csv(url, tmp_path / "new.csv")
    env = {**os.environ, **service_env, "PREFECT_API_URL": _api_url()}
    seqcast = [sys.executable, "-m", "flows.cli"]
    procs = [
        subprocess.Popen(
            [*seqcast, *args],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for args in (
            ["forecast", "--group", "prices"],
            ["forecast", "--group", "prices"],
            ["ingest", str(tmp_path / "new.csv")],
        )
    ]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    for proc, out in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, out[-3000:]
        assert "database is locked" not in out and "deadlock" not in out.lower()
    engine = make_engine(url)
    with engine.connect() as conn:
        runs = conn.execute(text("SELECT run_id, n_series, horizon FROM forecast_runs")).all()
        per_run = dict(
            conn.execute(text("SELECT run_id, COUNT(*) FROM forecasts GROUP BY run_id")).all()
        )
        batch = conn.execute(
            text(
                "SELECT received, accepted, rejected FROM ingest_batches "
                "WHERE source LIKE '%new.csv'"
            )
        ).one()
    engine.dispose()
    # Each forecast saw the data before or after the ingest: one or two distinct runs, each whole.
    assert 1 <= len(runs) <= 2
    for run_id, n_series, horizon in runs:
        assert per_run[run_id] == n_series * horizon
    assert tuple(batch) == (new_rows, new_rows, 0)


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)  # SQLite has no password
def test_a_planted_password_appears_nowhere(
    service_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.artifacts import download_artifacts
    from mlflow.tracking import MlflowClient
    from prefect.client.orchestration import get_client

    url = service_env["SEQCAST_DATABASE_URL"]
    secret = "PLANTED-s3cret-7f3a"
    monkeypatch.setenv("SEQCAST_DATABASE_URL", url.replace("postgres@", f"postgres:{secret}@", 1))
    pipeline(
        PipelineParams(
            ingest=IngestParams(bundled=["stocks"]),
            groups=[tiny_groups()[1]],
            retrain_after_hours=0,
        )
    )

    client = MlflowClient()
    seen: list[str] = []
    for exp in client.search_experiments():
        for run in client.search_runs([exp.experiment_id]):
            seen += [*run.data.params.values(), *run.data.tags.values(), *run.data.metrics]
            local = Path(download_artifacts(run_id=run.info.run_id, artifact_path=""))
            seen += [p.read_bytes().decode("latin-1") for p in local.rglob("*") if p.is_file()]
    for mv in client.search_model_versions("name = 'seqcast-prices'"):
        seen += [*mv.tags.values(), mv.source or ""]
        local = Path(download_artifacts(artifact_uri=f"models:/seqcast-prices/{mv.version}"))
        seen += [p.read_bytes().decode("latin-1") for p in local.rglob("*") if p.is_file()]
    with get_client(sync_client=True) as prefect:
        seen += [log.message for log in prefect.read_logs()]
        seen += [repr(fr.parameters) for fr in prefect.read_flow_runs()]
        seen += [repr(tr.task_inputs) + repr(tr.state) for tr in prefect.read_task_runs()]
        seen += [repr(a.data) for a in prefect.read_artifacts()]
    assert len(seen) > 50  # the scan looked at something
    assert not [s for s in seen if secret in s]
