"""A real Prefect server: its scheduler starts a served deployment's run, which completes and
writes rows; `prefect deploy --all` registers every deployment of prefect.yaml with its
schedules. The test starts the server on a free loopback port and stops all it started."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import yaml
from sqlalchemy import text

from db import make_engine
from db.migrate import upgrade
from tests.support import REPO
from tests.support.prefect_server import BIN, post, start, stop

pytestmark = pytest.mark.slow
ROOT = REPO


def test_scheduler_starts_a_served_deployment_that_writes_rows(
    prefect_server: dict[str, str], glucose: pd.DataFrame, tmp_path: Path
) -> None:
    db_url = f"sqlite:///{tmp_path / 'seqcast.db'}"
    engine = make_engine(db_url)
    upgrade(engine)
    csv = tmp_path / "glucose.csv"
    glucose.head(2000).to_csv(csv, index=False)
    script = tmp_path / "serve_ingest.py"
    script.write_text(
        textwrap.dedent(
            f"""
            from flows.series.ingest import ingest

            if __name__ == "__main__":  # the runner starts each flow run in a new process
                ingest.serve(
                    name="ingest-every-10s",
                    interval=10,
                    parameters={{"params": {{"paths": [{str(csv)!r}], "kind": "sensor",
                                              "freq": "5min"}}}},
                )
            """
        )
    )
    env = {**prefect_server, "SEQCAST_DATABASE_URL": db_url}
    runner = start([sys.executable, str(script)], env, tmp_path / "serve.log")
    try:
        deadline = time.monotonic() + 300
        completed: list[dict[str, Any]] = []
        runs: list[dict[str, Any]] = []
        while not completed:
            seen = [(r["name"], r["state_name"], r["auto_scheduled"]) for r in runs]
            assert runner.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            assert time.monotonic() < deadline, f"{seen} {(tmp_path / 'serve.log').read_text()}"
            time.sleep(3)
            # The scheduler creates runs ahead of time: ask for the finished ones.
            runs = post(
                prefect_server,
                "/flow_runs/filter",
                {"flow_runs": {"state": {"type": {"any_": ["COMPLETED", "FAILED", "CRASHED"]}}}},
            )
            completed = [
                r
                for r in runs
                if r["state_type"] == "COMPLETED" and r["auto_scheduled"] and r["deployment_id"]
            ]
        deployment = httpx.get(
            f"{prefect_server['PREFECT_API_URL']}/deployments/{completed[0]['deployment_id']}",
            timeout=30,
        ).json()
        assert deployment["name"] == "ingest-every-10s"
        assert deployment["schedules"][0]["schedule"]["interval"] == 10.0
    finally:
        stop(runner)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT COUNT(*) FROM observations")).scalar_one()
        batches = conn.execute(
            text("SELECT received, accepted FROM ingest_batches WHERE source LIKE '%glucose.csv'")
        ).all()
    engine.dispose()
    assert rows == 2000
    assert batches and batches[0] == (2000, 2000)


def test_prefect_deploy_all_registers_every_deployment(prefect_server: dict[str, str]) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "prefect"), "--no-prompt", *args],
            cwd=ROOT,
            env=prefect_server,
            capture_output=True,
            text=True,
            timeout=600,
        )

    pool = cli("work-pool", "create", "seqcast", "--type", "process", "--overwrite")
    assert pool.returncode == 0, pool.stdout + pool.stderr
    deployed = cli("deploy", "--all")
    assert deployed.returncode == 0, deployed.stdout[-3000:] + deployed.stderr[-3000:]

    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    declared = spec["deployments"]
    found = {d["name"]: d for d in post(prefect_server, "/deployments/filter", {})}
    # (the served test deployment of the other test may be there too)
    assert {d["name"] for d in declared} <= set(found) - {"ingest-every-10s"}
    for dep in declared:
        got = found[dep["name"]]
        assert got["work_pool_name"] == "seqcast"
        assert set(got["tags"]) == set(dep["tags"])
        assert got["parameters"] == (dep.get("parameters") or {})
        # Registered unresolved: the worker resolves {{ $SEQCAST_HOME }} at run time.
        assert got["pull_steps"] == spec["pull"]
        schedules = {
            (s["schedule"]["cron"], s["active"], yaml.safe_dump(s.get("parameters") or {}))
            for s in got["schedules"]
            if s.get("schedule")
        }
        assert schedules == {
            (s["cron"], s.get("active", True), yaml.safe_dump(s.get("parameters") or {}))
            for s in dep["schedules"]
        }
        if "concurrency_limit" in dep:
            limit = got.get("global_concurrency_limit") or {}
            assert limit.get("limit") == dep["concurrency_limit"], got
