"""End-to-end ``pipeline`` flow on embedded defaults: how much of its wall time is Prefect and
MLflow overhead rather than compute.

Data: 100 real M4 Hourly series (every 4th of ../shared/data/m4/Hourly-train.csv, 700-960
points each), written as one long CSV and ingested by the flow's own ingest step. Embedded
defaults: a SQLite database, MLflow on a SQLite store, Prefect without a server (its
ephemeral mode, like ``make demo`` and the ``seqcast`` CLI), all in a temporary directory.

Three runs of the flow, each retraining the group and forecasting:

- ``first``: the first run ever, in a process of its own: it creates Prefect's and MLflow's
  databases (reported, no target: it happens once per installation);
- ``cold``: a new process on the stores that now exist, as every scheduled run or CLI call
  is: Prefect's temporary server starts, MLflow's store is opened, lazy imports happen;
- ``warm``: the same flow again in that process;
- ``cold-server``: a new process against a Prefect server that is already running, the shape
  of a scheduled run taken by a worker (or a CLI call after ``make up``): no temporary
  server to start.

Two measurements of the same work:

1. Each flow run under a wall-clock stack sampler (bench/stack_sampler.py). Each sample is
   attributed by its whole stack: under ``mlflow.*`` -> MLflow (this includes model
   logging with its serving-input check and MLflow's own SQLite store); under seqcast's
   logging-only code (flows.tracking.plots, flows.tracking.comparison: figures, per-horizon
   errors, dataset inputs; flows.tracking.runs) -> "seqcast logging for MLflow"; innermost
   in ``prefect.*`` -> Prefect; anything else (ingest, DB reads and writes, training,
   backtest, prediction) -> compute.
2. The same compute steps called directly (db.ingest, read_group, fit, backtest, predict,
   write_forecast_run) on a fresh database, under the same stack sampler as the flow runs:
   overhead = (flow wall - bare wall) / flow wall. For the runs in a new process, the bare
   steps run the first time in a new process of their own. For ``warm``, the flow runs
   ``--repeats`` times (3) in its process, each run followed by the bare steps in that same
   process: the target takes the median of the pairs' flow walls against the median of their
   bare walls (one unpaired warm run against bare steps in another process differed by as
   much as the two bare processes differed from each other, 25 %).

    .venv/bin/python bench/pipeline_overhead.py [--quick] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import M4_TRAIN, Timer, load_average
from pipeline_overhead_report import report
from stack_sampler import Stack, StackSampler

SERIES_KIND = "m4hourly"
CSV = "m4_hourly_long.csv"
LOGGING_MODULES = ("flows.tracking.plots", "flows.tracking.comparison", "flows.tracking.runs")
COMPUTE_STEPS = (  # (module prefix, function) on the stack -> compute detail, first match wins
    ("forecasting.training", "fit", "train"),
    ("forecasting.backtest", "backtest", "backtest"),
    ("forecasting.forecaster", "predict", "predict"),
    ("db.forecasts", "write_forecast_run", "db write (forecast run)"),
    ("db.ingest", "ingest_chunks", "ingest (read CSV, validate, upsert)"),
    ("flows.series.data", "read_group", "db read (group data)"),
)


def classify(stack: Stack) -> tuple[str, str]:
    """(category, detail) of one sample; ``stack`` is outermost first."""
    for module, func in stack:
        if module.startswith("mlflow"):
            return "mlflow", f"{module}.{func}"
    for module, func in stack:
        if module in LOGGING_MODULES:
            return "seqcast logging for mlflow", f"{module}.{func}"
    inner = next(
        (m for m, _ in reversed(stack) if m.startswith(("prefect", "flows", "forecasting", "db"))),
        "",
    )
    if inner.startswith("prefect"):
        return "prefect", inner
    for prefix, func, detail in COMPUTE_STEPS:
        if any(m.startswith(prefix) and f == func for m, f in stack):
            return "compute", detail
    return "compute", f"other ({inner or stack[-1][0]})"


def setup_environment(workdir: Path) -> None:
    """Embedded defaults in ``workdir``; set before Prefect and MLflow are imported."""
    (workdir / "tmp").mkdir(exist_ok=True)
    os.environ["TMPDIR"] = str(workdir / "tmp")
    tempfile.tempdir = None
    os.environ["SEQCAST_DATABASE_URL"] = f"sqlite:///{workdir / 'seqcast.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{workdir / 'mlflow.db'}"
    os.environ["SEQCAST_EXPERIMENT"] = "seqcast-bench-pipeline"
    os.environ["SEQCAST_BENCH_WORKDIR"] = str(workdir)
    os.environ["PREFECT_HOME"] = str(workdir / "prefect")
    os.environ.pop("PREFECT_API_URL", None)  # ephemeral mode
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    # A busy shared machine can take longer than the default 20 s to start the server.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
    os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")
    os.environ.setdefault("DO_NOT_TRACK", "true")


def write_series_csv(path: Path, n_series: int) -> tuple[int, int]:
    """Every k-th M4 Hourly series as a long CSV; returns (series, rows)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from m4_hourly import long_frame, read_wide

    full = read_wide(M4_TRAIN)
    ids = list(full)
    step = max(len(ids) // n_series, 1)
    chosen = {f"m4-{k}": full[k] for k in ids[::step][:n_series]}
    frame = long_frame(chosen)
    frame["ts"] = frame["ts"].map(lambda t: t.isoformat())
    frame.to_csv(path, index=False)
    return len(chosen), len(frame)


def group_for(quick: bool) -> Any:
    """ModelGroup's defaults for the training budget (LSTM and GRU, hidden 64 x 2, up to 20
    epochs of 8,192 windows with early stopping) and hourly-data settings for the rest
    (as bench/m4_hourly.py: a week read one day per step, window-normalised, seasonal skip),
    so the models beat seasonal naive and the champion is promoted and forecasts."""
    from flows.series.params import ModelGroup

    small = {"cells": ["lstm"], "hidden_size": 32, "num_layers": 1, "max_epochs": 1,
             "windows_per_epoch": 512}  # fmt: skip
    return ModelGroup(
        name="m4",
        series_kind=SERIES_KIND,
        window=336,
        horizon=48,
        season_length=24,
        normalize="window",
        patch_len=24,
        seasonal_skip=168,
        val_size=96,
        test_size=96,
        **(small if quick else {}),
    )


def bare_run(csv: Path, group: Any, workdir: Path, db_name: str) -> dict[str, float]:
    """The flow's compute steps, called directly on a fresh SQLite database."""
    import pandas as pd

    from db import make_engine
    from db.forecasts import ForecastRun, write_forecast_run
    from db.ingest import ingest_chunks
    from db.migrate import upgrade
    from db.observations import SeriesSpec
    from flows.series.data import read_group
    from flows.sources.readers import read_file
    from forecasting.forecaster import GlobalForecaster

    engine = make_engine(f"sqlite:///{workdir / db_name}")
    upgrade(engine)
    times: dict[str, float] = {}

    def step(name: str, fn: Any) -> Any:
        t0 = time.perf_counter()
        out = fn()
        times[name] = times.get(name, 0.0) + time.perf_counter() - t0
        return out

    def ingest() -> Any:
        batch = read_file(csv, SeriesSpec(SERIES_KIND, "h"))
        return ingest_chunks(
            engine, batch.chunks(), batch.source, batch.content_sha256, batch.declare
        )

    step("ingest", ingest)
    data = step("db read (train)", lambda: read_group(engine, group))
    trained = []
    for cell in group.cells:  # every candidate is trained and backtested
        forecaster = GlobalForecaster(group.spec(cell))
        step("train", lambda f=forecaster: f.fit(data.frame, data.freqs))
        step("backtest", forecaster.backtest)
        trained.append(forecaster)
    forecaster = trained[0]
    # The second (warm) flow run also re-evaluates the champion on the holdout (promotion).
    step(
        "evaluate (warm run only)",
        lambda: forecaster.evaluate(data.frame, group.spec(group.cells[0]).panel),
    )
    data = step("db read (forecast)", lambda: read_group(engine, group))
    rows, _ = step("predict", lambda: forecaster.predict(data.frame))
    run = ForecastRun(
        model_name=group.registered_model,
        model_version="1",
        mlflow_run_id="bare",
        horizon=group.horizon,
        issued_at=pd.Timestamp(data.frame["ts"].max()).to_pydatetime(),
        input_sha256=data.sha256,
    )
    step("db write", lambda: write_forecast_run(engine, run, rows))
    engine.dispose()
    return times


PHASES = {
    "first": ("first",),
    "cold-warm": ("cold", "warm"),
    "cold-server": ("cold-server",),
    "bare": ("bare-cold", "bare-warm"),
}


def prefect_server_cpu_s() -> float:
    """CPU seconds used so far by the Prefect API server processes on this machine (the
    temporary one a flow process starts, or the running ``prefect server``): work the stack
    sampler of the flow's own process cannot see, on the same cores as the training."""
    import psutil

    total = 0.0
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if (
            proc.info["pid"] != os.getpid()
            and "prefect" in cmdline
            and ("uvicorn" in cmdline or "server start" in cmdline)
        ):
            try:
                times = proc.cpu_times()
                total += times.user + times.system
            except psutil.Error:  # ended meanwhile
                continue
    return total


def flow_runs(phase: str, workdir: Path, quick: bool, threads: int, repeats: int = 1) -> None:
    """In a process of its own: the flow run(s) of ``phase`` under the stack sampler, written
    as ``<workdir>/<phase>.json``; ``cold-warm`` runs the warm flow ``repeats`` times, each
    followed by the bare steps in the same process (paired)."""
    import json

    import torch

    torch.set_num_threads(threads)
    from flows.series.params import IngestParams, PipelineParams
    from flows.series.pipeline import pipeline

    group = group_for(quick)
    if phase == "bare":  # the same steps called directly, the first time and again
        times = {}
        for n in PHASES[phase]:
            # Under the same sampler as the flow runs, so both pay its cost (a thread taking
            # the GIL every 5 ms slows the training loop measurably).
            with StackSampler(classify):
                times[n] = bare_run(workdir / CSV, group, workdir, f"{n}.db")
        (workdir / f"{phase}.json").write_text(json.dumps(times))
        return
    params = PipelineParams(
        ingest=IngestParams(paths=[str(workdir / CSV)], kind=SERIES_KIND, freq="h"),
        groups=[group],
        retrain_after_hours=0,
        drift_ratio=None,
    )
    out: dict[str, Any] = {}
    names = list(PHASES[phase])
    if phase == "cold-warm":  # warm again, each followed by the bare steps in this process
        names += [f"warm-{k}" for k in range(2, repeats + 1)]
    for name in names:
        server_before = prefect_server_cpu_s()
        with StackSampler(classify) as sampler, Timer() as flow_t:
            summary = pipeline(params)
        server_cpu = prefect_server_cpu_s() - server_before
        forecast = summary.forecast.outcome("m4")
        forecasted = getattr(forecast, "rows", None) is not None
        if not forecasted:
            print(f"pipeline_overhead: {name} run wrote no forecast run: {forecast}")
        if name == "first" and not forecasted:
            # The model did not beat seasonal naive, so it was not promoted and the forecast
            # step was skipped: alias it champion (untimed) so the later runs forecast.
            from mlflow.tracking import MlflowClient

            MlflowClient().set_registered_model_alias(group.registered_model, "champion", "1")
        print(f"{name} flow {flow_t.seconds:.1f} s", flush=True)
        out[name] = {
            "wall": flow_t.seconds,
            "forecasted": forecasted,
            "categories": dict(sampler.categories),
            "details": [[c, d, v] for (c, d), v in sampler.details.items()],
            "leaves": dict(sampler.leaves),
            "server_cpu_s": server_cpu,
        }
        if name.startswith("warm"):
            # Paired: the same steps called directly in this same warm process, right after.
            with StackSampler(classify):
                steps = bare_run(workdir / CSV, group, workdir, f"paired-{name}.db")
            out[name]["paired_bare"] = steps
    (workdir / f"{phase}.json").write_text(json.dumps(out))


def run_phase(
    phase: str, workdir: Path, args: argparse.Namespace, api_url: str | None = None
) -> dict[str, Any]:
    """Run :func:`flow_runs` for ``phase`` in a fresh Python process (against the Prefect
    server at ``api_url``, else a temporary one); its results."""
    import json
    import subprocess

    cmd = [sys.executable, __file__, "--phase", phase, "--threads", str(args.threads)]
    cmd += ["--repeats", str(args.repeats)]
    env = {**os.environ, **({"PREFECT_API_URL": api_url} if api_url else {})}
    subprocess.run(cmd + (["--quick"] if args.quick else []), check=True, env=env)
    runs: dict[str, Any] = json.loads((workdir / f"{phase}.json").read_text())
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 series, one short epoch")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--series", type=int, help="number of M4 series (default 100)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--repeats", type=int, default=3, help="warm runs, each paired with the bare steps"
    )
    parser.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:  # a child process: the environment is already set
        workdir = Path(os.environ["SEQCAST_BENCH_WORKDIR"])
        flow_runs(args.phase, workdir, args.quick, args.threads, args.repeats)
        return
    n_series = args.series or (10 if args.quick else 100)
    workdir = Path(tempfile.mkdtemp(prefix="seqcast-bench-pipeline-")).resolve()
    setup_environment(workdir)
    import torch

    torch.set_num_threads(args.threads)
    from db import make_engine
    from db.migrate import upgrade

    series, rows = write_series_csv(workdir / CSV, n_series)
    engine = make_engine(os.environ["SEQCAST_DATABASE_URL"])
    upgrade(engine)  # `seqcast db upgrade`, done once before any flow (as in make demo)
    engine.dispose()
    group = group_for(args.quick)
    load_before = load_average()
    print(f"pipeline flow: {series} series, {rows} rows, {workdir}", flush=True)
    runs = {**run_phase("first", workdir, args), **run_phase("cold-warm", workdir, args)}
    runs.update(cold_on_a_server(workdir, args))
    bare = run_phase("bare", workdir, args)
    load_after = load_average()
    report(runs, bare, group, args, f"{series} real M4 Hourly series (every 4th), {rows} rows, "
           f"long CSV", f"{load_before:.2f} / {load_after:.2f}")  # fmt: skip
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)


def cold_on_a_server(workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The ``cold-server`` phase, with a ``prefect server`` started (untimed) for it."""
    import signal

    from cli_latency import start_local_server

    server = start_local_server(workdir)
    port = (workdir / ".seqcast-servers" / "prefect.port").read_text().strip()
    try:
        return run_phase("cold-server", workdir, args, f"http://127.0.0.1:{port}/api")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)


if __name__ == "__main__":
    main()
