"""Faults: processes killed mid-write or mid-training, services that are not there, races."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import threading

import pandas as pd
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from db import make_engine
from db.ingest import ingest_observations
from db.observations import SeriesSpec
from flows.cli import app
from tests.support import REPO

ROOT = REPO
MARK = "SEQCAST-TEST-MARK"


def _child(code: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """Run ``code`` in a fresh interpreter that prints MARK and hangs at the injected point."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # so the whole process group can be killed
    )


def _kill_at_mark(proc: subprocess.Popen[str], timeout: float = 120) -> str:
    seen = []
    assert proc.stdout is not None

    def kill() -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)

    watchdog = threading.Timer(timeout, kill)  # never hang the suite
    watchdog.start()
    try:
        for line in proc.stdout:
            seen.append(line)
            if MARK in line:
                kill()
                break
        proc.wait(timeout=timeout)
    finally:
        watchdog.cancel()
        kill()  # whatever the child started goes too
    assert seen and MARK in seen[-1], "never reached the injected point:\n" + "".join(seen)[-3000:]
    assert proc.returncode == -signal.SIGKILL
    return "".join(seen)


def _api_url() -> str:
    """The session's temporary Prefect API, so children need not start their own."""
    from prefect.settings import PREFECT_API_URL

    return str(PREFECT_API_URL.value())


def _count(url: str, table: str) -> int:
    engine = make_engine(url)
    with engine.connect() as conn:
        n = conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one()
    engine.dispose()
    return int(n)


@pytest.mark.slow
def test_killing_a_forecast_write_leaves_no_partial_run(database_url: str) -> None:
    engine = make_engine(database_url)
    raw = pd.DataFrame(
        {"series_id": ["s1"], "ts": ["2024-01-01T00:00:00Z"], "value": ["1"], "row_number": [2]}
    )
    ingest_observations(engine, raw, "seed", "h", SeriesSpec("sensor", "h"))
    engine.dispose()
    proc = _child(
        f"""
        import time, pandas as pd
        import db.forecasts
        from db import make_engine
        from db.forecasts import ForecastRun, write_forecast_run
        engine = make_engine({database_url!r})
        bulk_insert = db.forecasts._insert_rows  # COPY or executemany, below SQLAlchemy's events

        def hang(*args):
            bulk_insert(*args)
            print("{MARK}", flush=True)  # the run row and its rows are written, not committed
            time.sleep(60)

        db.forecasts._insert_rows = hang

        ts = pd.date_range("2024-01-01T01:00", periods=48, freq="h", tz="UTC")
        rows = pd.DataFrame({{"series_id": "s1", "ts": ts, "step": range(1, 49), "yhat": 1.0,
                             "yhat_lower": 0.0, "yhat_upper": 2.0}})
        issued = pd.Timestamp("2024-01-01", tz="UTC").to_pydatetime()
        run = ForecastRun("m", "1", "r", 48, issued, "x")
        write_forecast_run(engine, run, rows)
        """,
        {},
    )
    _kill_at_mark(proc)
    assert _count(database_url, "forecast_runs") == 0
    assert _count(database_url, "forecasts") == 0


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_killing_training_registers_nothing_and_the_next_run_is_clean(
    service_env: dict[str, str],
) -> None:
    from mlflow.tracking import MlflowClient

    from flows.series.ingest import ingest
    from flows.series.params import IngestParams, TrainParams
    from flows.series.train import train_forecasters
    from tests.support.groups import tiny_groups

    ingest(IngestParams(bundled=["stocks"]))
    group = tiny_groups()[1].model_copy(update={"max_epochs": 3})
    proc = _child(
        f"""
        import os, time
        import flows.tracking.runs
        from flows.series.params import TrainParams, ModelGroup
        from flows.series.train import train_forecasters

        original = flows.tracking.runs.EpochLogger.__call__
        def hang(self, epoch, metrics):
            original(self, epoch, metrics)
            os.write(1, b"{MARK}\\n")  # raw fd 1: Prefect turns print() in flows into logs
            time.sleep(120)
        flows.tracking.runs.EpochLogger.__call__ = hang
        train_forecasters(TrainParams(groups=[ModelGroup.model_validate_json({group.model_dump_json()!r})]))
        """,
        {**service_env, "PREFECT_API_URL": _api_url()},
    )
    _kill_at_mark(proc, timeout=150)
    client = MlflowClient()
    assert client.search_model_versions("name = 'seqcast-prices'") == []
    summary = train_forecasters(TrainParams(groups=[group]))
    assert summary.group("prices").decision.reason.startswith("no champion yet;")
    versions = sorted(
        str(v.version) for v in client.search_model_versions("name = 'seqcast-prices'")
    )
    assert versions == ["1", "2"]  # only the clean run's LSTM and GRU
    assert str(client.get_model_version_by_alias("seqcast-prices", "champion").version) in versions


def test_an_unreachable_database_is_named_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "SEQCAST_DATABASE_URL", "postgresql+psycopg://seqcast:S3CRET@127.0.0.1:1/none"
    )
    result = CliRunner().invoke(app, ["forecast"])
    assert result.exit_code == 1
    assert (
        "cannot reach the database at postgresql+psycopg://seqcast:***@127.0.0.1:1/none"
        in result.output
    )
    assert "S3CRET" not in result.output and "Traceback" not in result.output


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_unreachable_mlflow_fails_the_flow_naming_it(
    service_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.client.schemas.objects import StateType

    from flows.checks import check_tracking
    from flows.series.forecast import forecast

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    monkeypatch.setattr(check_tracking, "retry_delay_seconds", [0, 0, 0])
    state = forecast(return_state=True)
    assert state.type == StateType.FAILED
    assert "http://127.0.0.1:1" in state.message
    assert _count(service_env["SEQCAST_DATABASE_URL"], "forecast_runs") == 0


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_diverging_run_fails_with_its_reason_and_registers_nothing(
    service_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.tracking import MlflowClient
    from prefect.client.schemas.objects import StateType

    from flows.series.ingest import ingest
    from flows.series.params import IngestParams, TrainParams
    from flows.series.train import train_forecasters
    from forecasting.forecaster import GlobalForecaster
    from forecasting.training import TrainingDiverged
    from tests.support.groups import tiny_groups

    ingest(IngestParams(bundled=["stocks"]))

    def diverge(self: GlobalForecaster, *args: object, **kwargs: object) -> None:
        raise TrainingDiverged("epoch 1: non-finite loss or gradient norm (last loss nan)")

    monkeypatch.setattr(GlobalForecaster, "fit", diverge)
    state = train_forecasters(TrainParams(groups=[tiny_groups()[1]]), return_state=True)
    assert state.type == StateType.FAILED
    assert "every candidate diverged" in state.message
    client = MlflowClient()
    assert client.search_model_versions("name = 'seqcast-prices'") == []
    experiment = client.get_experiment_by_name("seqcast-test")
    children = [
        r
        for r in client.search_runs([experiment.experiment_id])
        if "mlflow.parentRunId" in r.data.tags
    ]
    assert len(children) == 2
    assert all(
        r.info.status == "FAILED" and "non-finite" in r.data.tags["failure"] for r in children
    )
