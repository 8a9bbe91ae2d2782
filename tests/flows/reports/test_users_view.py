"""The users' view over one real training run: MLflow runs compared in the UI (headless
Chromium) and through the REST API, ``seqcast status`` and ``seqcast report``."""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from flows.cli import app
from tests.support import REPO, trained_store

pytestmark = pytest.mark.slow
runner = CliRunner()
ROOT = REPO
CELLS = {"lstm", "gru", "rnn"}
BASELINES = {"naive", "seasonal_naive"}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, prefect_harness: None) -> Iterator[Path]:
    """The pipeline flow once: stock prices, tiny LSTM, GRU and RNN, SQLite + MLflow store."""
    root = tmp_path_factory.mktemp("users")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        for key, value in trained_store.environment(root).items():
            mp.setenv(key, value)
        trained_store.run(root)
        yield root


def _runs(client: MlflowClient) -> tuple[Any, list[Any]]:
    exp = client.get_experiment_by_name(trained_store.EXPERIMENT)
    runs = client.search_runs([exp.experiment_id])
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    return parent, children


def test_runs_are_comparable_out_of_the_box(store: Path) -> None:
    client = MlflowClient()
    parent, children = _runs(client)
    by_cell = {c.data.tags["cell"]: c for c in children}
    assert set(by_cell) == CELLS | BASELINES
    model_keys = {cell: set(by_cell[cell].data.metrics) for cell in CELLS}
    assert len({frozenset(k) for k in model_keys.values()}) == 1, model_keys
    shared = {"backtest_mae", "backtest_rmse", "backtest_smape", "backtest_mase"}
    for cell in BASELINES:
        run = by_cell[cell]
        assert run.data.tags["model_type"] == "baseline"
        assert shared <= set(run.data.metrics) <= model_keys["lstm"]
        # The baseline run's numbers are the ones logged beside every model.
        assert run.data.metrics["backtest_mase"] == pytest.approx(
            by_cell["gru"].data.metrics[f"{cell}_mase"]
        )
        (csv,) = client.list_artifacts(run.info.run_id, "backtest")
        assert csv.path == "backtest/per_series.csv"
    sha = parent.data.tags["data_sha256"]
    for run in [parent, *children]:
        assert run.data.tags["flow_run_id"] and run.data.tags["group"] == "prices"
        assert run.data.tags["data_sha256"] == sha
        (inp,) = run.inputs.dataset_inputs
        assert inp.dataset.name == "prices" and inp.dataset.digest == sha[:36]
        tags = {t.key: t.value for t in inp.tags}
        assert tags["mlflow.data.context"] == "training" and tags["data_sha256"] == sha
        assert '"num_rows": 12154' in inp.dataset.profile
    for cell in CELLS:
        run_id = by_cell[cell].info.run_id
        assert by_cell[cell].data.params["model.hidden_size"] == "8"
        assert by_cell[cell].data.params["train.clip_norm"] == "1.0"
        steps = client.get_metric_history(run_id, "mae_by_step")
        assert sorted(m.step for m in steps) == [1, 2, 3, 4, 5]
        assert all(m.value > 0 for m in steps)
        plots = {a.path for a in client.list_artifacts(run_id, "plots")}
        assert {
            "plots/forecast_vs_actual.png",
            "plots/loss_curve.png",
            "plots/grad_norm.png",
            "plots/per_horizon_error.png",
        } <= plots


def _ui_check() -> Any:
    spec = importlib.util.spec_from_file_location(
        "mlflow_ui_check", ROOT / "bench/mlflow_ui_check.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_mlflow_ui_compares_the_runs_in_headless_chromium(store: Path, tmp_path: Path) -> None:
    check = _ui_check()
    if not (Path(check.CHROMIUM).exists() and Path(check.CHROMEDRIVER).exists()):
        message = "chromium/chromedriver missing: apt-get install chromium chromium-driver"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (.ci/run installs them)")
        pytest.skip(message)
    out = Path(os.environ.get("SEQCAST_SCREENSHOT_DIR") or tmp_path)
    result = check.check_ui(
        trained_store.environment(store)["MLFLOW_TRACKING_URI"],
        str(store / "mlruns"),
        trained_store.EXPERIMENT,
        out,
    )
    assert result["charts"] >= 1
    shot = Path(result["screenshot"])
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 50_000
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert width >= 1200 and height >= 1200
    for name in ("prices-lstm", "prices-gru", "prices-rnn", "prices-naive", "backtest_mae"):
        assert name in result["page_text"], name
    # The same runs through the REST API: every model's history, every run's keys.
    assert set(result["rest"]) == CELLS | BASELINES
    assert all(result["rest"][c]["val_loss_epochs"] >= 1 for c in CELLS)


def test_status_shows_data_champions_and_forecasts(store: Path) -> None:
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 0, result.output
    champion = MlflowClient().get_model_version_by_alias("seqcast-prices", "champion")
    out = result.output
    assert re.search(rf"seqcast-prices\s*│\s*3\s*│\s*v{champion.version}\s*│", out), out
    assert re.search(r"price\s*│\s*5\s*│\s*5\s*│\s*12154", out)
    assert "bundled:stocks" in out
    for ticker in ("AAPL", "FB", "GOOG", "IBM", "MSFT"):
        assert f"stock-{ticker}" in out
    assert "no Prefect server configured" in out


def test_status_lists_scheduled_runs_of_a_prefect_server(store: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.client.schemas.schedules import CronSchedule
    from prefect.settings import PREFECT_API_URL
    from prefect.states import Scheduled

    from flows.reports.status import scheduled_runs

    url = PREFECT_API_URL.value()  # the session's temporary Prefect server
    when = dt.datetime.now(dt.UTC) + dt.timedelta(hours=3)
    with get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name("forecast")
        deployment = client.create_deployment(
            flow_id,
            name="forecast-status-test",
            schedules=[DeploymentScheduleCreate(schedule=CronSchedule(cron="5 * * * *"))],
        )
        client.create_flow_run_from_deployment(deployment, state=Scheduled(scheduled_time=when))
    runs = scheduled_runs(url)
    mine = [r for r in runs if r["deployment"] == "forecast-status-test"]
    assert mine and abs(mine[0]["expected_start"] - when) < dt.timedelta(seconds=1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PREFECT_API_URL", url)
        result = runner.invoke(app, ["status"])
    assert result.exit_code == 0, result.output
    assert "Next scheduled runs" in result.output and "forecast-status-test" in result.output


EXTERNAL = re.compile(
    r"""(?:src|href)\s*=\s*(?!["']?(?:data:|#))|url\(|<script|<link|@import""", re.I
)


def test_report_is_one_self_contained_html_file(store: Path, tmp_path: Path) -> None:
    path = tmp_path / "out" / "report.html"
    result = runner.invoke(app, ["report", "--output", str(path)])
    assert result.exit_code == 0, result.output
    page = path.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert EXTERNAL.search(page) is None, EXTERNAL.search(page)
    assert "http://" not in page and "https://" not in page
    images = re.findall(r"<img alt='([^']+)' src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    assert {alt for alt, _ in images} == {
        f"stock-{t}" for t in ("AAPL", "FB", "GOOG", "IBM", "MSFT")
    }
    assert all(len(data) > 10_000 for _, data in images)
    table = page[page.index("<h2>Model comparison") : page.index("<h2>Forecasts per series")]
    for cell in CELLS | BASELINES:
        assert f">{cell}</td>" in table, cell
    champion = MlflowClient().get_model_version_by_alias("seqcast-prices", "champion")
    row = (
        f'<tr class="champion"><td class="l">seqcast-prices</td><td class="l">v{champion.version}<'
    )
    assert row in table


def test_report_and_status_fail_in_one_line_on_an_unmigrated_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEQCAST_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    for args in (["status"], ["report", "-o", str(tmp_path / "r.html")]):
        result = runner.invoke(app, args)
        assert result.exit_code == 1
        assert "run `seqcast db upgrade`" in result.output
        assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "r.html").exists()
