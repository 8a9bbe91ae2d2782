"""Look at the MLflow UI as a person would: compare seqcast's runs in headless Chromium.

Starts ``mlflow ui`` on a free 127.0.0.1 port over a tracking store (default: the demo's
``sqlite:///mlflow.db`` with artifacts in ``./mlruns``), opens the experiment's chart view
comparing a training flow's model and baseline runs in headless Chromium (driven through
chromedriver's W3C WebDriver HTTP API), waits until the metric charts have drawn, and saves a
screenshot. It then asks the REST API for the same runs and their metric histories and checks
that every model and baseline run carries the same metric keys.

    .venv/bin/python bench/mlflow_ui_check.py --out bench/screenshots
    .venv/bin/python bench/mlflow_ui_check.py --tracking-uri sqlite:///mlflow.db \
        --artifacts ./mlruns --experiment seqcast --out /tmp/shots

Needs the Debian packages ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

CHROMIUM = os.environ.get("SEQCAST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("SEQCAST_CHROMEDRIVER", "/usr/bin/chromedriver")
HEADLESS_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--window-size=1600,2600",  # tall: the metrics table fits below the charts,
]
# Keys every model and baseline run must share: what the compare view lines up.
COMMON_KEYS = {"backtest_mae", "backtest_rmse", "backtest_smape", "backtest_mase"}
MODEL_KEYS = COMMON_KEYS | {"train_loss", "val_loss", "grad_norm_mean", "grad_norm_max", "lr"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float, log: Path) -> None:
    """Poll ``url`` until it answers 200; fail with the log's tail if the process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s: {log.read_text()[-2000:]}")


@contextmanager
def process(args: list[str], url: str, log: Path, timeout: float = 120) -> Iterator[None]:
    """Run ``args`` in its own process group until the block ends."""
    env = {**os.environ, "MLFLOW_ENABLE_TELEMETRY": "false", "DO_NOT_TRACK": "true"}
    with log.open("wb") as fh:
        proc = subprocess.Popen(args, stdout=fh, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)  # fmt: skip
    try:
        wait_http(url, proc, timeout, log)
        yield
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


class Browser:
    """The few WebDriver commands this check needs."""

    def __init__(self, driver_url: str, profile: Path) -> None:
        self.http = httpx.Client(base_url=driver_url, timeout=120)
        caps = {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [*HEADLESS_FLAGS, f"--user-data-dir={profile}"],
            },
        }
        reply = self._call("POST", "/session", {"capabilities": {"alwaysMatch": caps}})
        self.session = f"/session/{reply['sessionId']}"

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        r = self.http.request(method, path, json=body)
        value = r.json().get("value")
        if r.status_code != 200:
            raise RuntimeError(f"WebDriver {method} {path}: {value}")
        return value

    def open(self, url: str) -> None:
        self._call("POST", f"{self.session}/url", {"url": url})

    def js(self, script: str) -> Any:
        return self._call("POST", f"{self.session}/execute/sync", {"script": script, "args": []})

    def wait_for(self, script: str, timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.js(script)
            if value:
                return value
            time.sleep(0.5)
        raise TimeoutError(f"the page never showed {what} within {timeout:.0f} s")

    def screenshot(self, path: Path) -> Path:
        path.write_bytes(base64.b64decode(self._call("GET", f"{self.session}/screenshot")))
        return path

    def close(self) -> None:
        try:
            self._call("DELETE", self.session)
        finally:
            self.http.close()


def training_runs(api: httpx.Client, experiment: str) -> tuple[str, dict[str, Any], list[dict]]:
    """The experiment id, the newest training parent run and its child runs (REST API)."""
    exp = api.get("/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": experiment})
    exp.raise_for_status()
    exp_id = exp.json()["experiment"]["experiment_id"]
    found = api.post(
        "/api/2.0/mlflow/runs/search",
        json={
            "experiment_ids": [exp_id],
            "filter": "tags.flow = 'train-forecasters'",
            "order_by": ["attributes.start_time DESC"],
            "max_results": 500,
        },
    )
    found.raise_for_status()
    runs = found.json().get("runs", [])

    def tags(run: dict[str, Any]) -> dict[str, str]:
        return {t["key"]: t["value"] for t in run["data"].get("tags", [])}

    parents = [r for r in runs if "mlflow.parentRunId" not in tags(r)]
    if not parents:
        raise RuntimeError(f"no train-forecasters run in experiment {experiment!r}")
    parent = parents[0]
    children = [r for r in runs if tags(r).get("mlflow.parentRunId") == parent["info"]["run_id"]]
    for child in children:
        child["tags"] = tags(child)
        child["metric_keys"] = {m["key"] for m in child["data"].get("metrics", [])}
    return exp_id, parent, children


def check_rest(api: httpx.Client, children: list[dict[str, Any]]) -> dict[str, Any]:
    """Same metric keys on every run; per-epoch histories on every model run."""
    report: dict[str, Any] = {}
    for child in children:
        cell = child["tags"].get("cell", "?")
        baseline = child["tags"].get("model_type") == "baseline"
        need = COMMON_KEYS if baseline else MODEL_KEYS
        missing = need - child["metric_keys"]
        if missing:
            raise AssertionError(f"run {cell} lacks metrics {sorted(missing)}")
        entry: dict[str, Any] = {"baseline": baseline, "keys": sorted(child["metric_keys"])}
        if not baseline:
            hist = api.get(
                "/api/2.0/mlflow/metrics/get-history",
                params={"run_id": child["info"]["run_id"], "metric_key": "val_loss"},
            )
            hist.raise_for_status()
            entry["val_loss_epochs"] = len(hist.json().get("metrics", []))
            if entry["val_loss_epochs"] < 1:
                raise AssertionError(f"run {cell} has no val_loss history")
        report[cell] = entry
    models = [c for c, e in report.items() if not e["baseline"]]
    keysets = {c: set(report[c]["keys"]) for c in models}
    if len({frozenset(k) for k in keysets.values()}) > 1:
        raise AssertionError(f"model runs differ in metric keys: {keysets}")
    return report


# Metric charts in MLflow 3's run comparison are drawn by plotly into SVG.
CHARTS_DRAWN = """
const plots = document.querySelectorAll('.js-plotly-plot');
return Array.from(plots)
  .filter(p => p.querySelectorAll('path, rect.point, g.trace').length > 0).length;
"""


def check_ui(
    tracking_uri: str, artifacts: str, experiment: str, out: Path, timeout: float = 180
) -> dict[str, Any]:
    """Start the UI, compare the newest training flow's runs, screenshot, query REST."""
    for binary in (CHROMIUM, CHROMEDRIVER):
        if not Path(binary).exists():
            raise FileNotFoundError(f"{binary} missing: apt-get install chromium chromium-driver")
    out.mkdir(parents=True, exist_ok=True)
    port, driver_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    mlflow_bin = str(Path(sys.executable).with_name("mlflow"))
    ui = [mlflow_bin, "ui", "--backend-store-uri", tracking_uri, "--default-artifact-root",
          artifacts, "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="seqcast-ui-") as tmp:
        profile = Path(tmp) / "profile"
        with (
            process(ui, f"{base}/health", Path(tmp) / "mlflow.log", timeout),
            process(
                [CHROMEDRIVER, f"--port={driver_port}"],
                f"http://127.0.0.1:{driver_port}/status",
                Path(tmp) / "driver.log",
            ),  # fmt: skip
            httpx.Client(base_url=base, timeout=30) as api,
        ):
            exp_id, parent, children = training_runs(api, experiment)
            rest = check_rest(api, children)
            ids = [c["info"]["run_id"] for c in children]
            url = (
                f"{base}/#/compare-runs?runs={json.dumps(ids, separators=(',', ':'))}"
                f"&experiments={json.dumps([exp_id])}"
            )
            browser = Browser(f"http://127.0.0.1:{driver_port}", profile)
            try:
                browser.open(url)
                charts = browser.wait_for(CHARTS_DRAWN, timeout, "drawn metric charts")
                time.sleep(2)  # let plotly finish its transition before the picture
                text = browser.js("return document.body.innerText")
                shot = browser.screenshot(out / "mlflow_compare_runs.png")
            finally:
                browser.close()
        shutil.rmtree(profile, ignore_errors=True)
    return {
        "url": url,
        "charts": charts,
        "screenshot": str(shot),
        "page_text": text,
        "parent_run": parent["info"]["run_id"],
        "runs": {c["tags"].get("cell"): c["info"]["run_id"] for c in children},
        "rest": rest,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", default="sqlite:///mlflow.db")
    parser.add_argument("--artifacts", default="./mlruns")
    parser.add_argument("--experiment", default="seqcast")
    parser.add_argument("--out", type=Path, default=Path("bench/screenshots"))
    args = parser.parse_args(argv)
    result = check_ui(args.tracking_uri, str(Path(args.artifacts).resolve()), args.experiment,
                      args.out)  # fmt: skip
    result.pop("page_text")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
