"""M4 Hourly through the service (ingest, a model group, train-forecasters, forecast, SQL)
against the same recipe called directly, as bench/m4_hourly.py calls it.

    .venv/bin/python bench/m4_flow.py [--series N] [--epochs E] [--windows-per-epoch W]
        [--path both|flow|direct] [--workdir DIR] [--out FILE]

The flow path, in a fresh project directory (SQLite store, MLflow on SQLite, a temporary
Prefect API): the first N series of Hourly-train.csv minus their last 48 points go into a long
CSV, the ``ingest`` flow loads it (kind ``load``, freq ``h``), a project file declares one
group with the bench's recipe as explicit settings (``derive: false``), the real
``train-forecasters`` flow trains, backtests, registers and promotes it, the ``forecast`` flow
writes its forecasts, and the forecasts are read back with SQL from ``latest_forecasts``.

The direct path builds the spec through the same ``ModelGroup.spec`` (so the split is the
group's: validation and test parts of 48 points each, no refit) and calls
``GlobalForecaster.fit`` and ``predict`` on the bench's frame.

Both are scored on the 48 held-back points (sMAPE, MASE with m=24, OWA against Naive2, as
bench/m4_hourly.py) and written to bench/results/m4_flow.json with the difference.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from common import machine  # noqa: E402  (flushes subnormals, as the seqcast CLI does)
from m4_hourly import DEFAULT_TRAIN, HORIZON, SEASON, long_frame, mase, read_wide, smape  # noqa: E402

from forecasting.baselines import naive2  # noqa: E402

GROUP = "m4-hourly"
KIND = "load"
CELL = "gru"
BENCH_ALIAS = "m4-flow"  # forecasts with the trained version when it was not promoted


def recipe(args: argparse.Namespace) -> dict[str, Any]:
    """bench/m4_hourly.py's recipe as a group's settings; test_size the smallest allowed."""
    return {
        "cells": [CELL],
        "window": 336,
        "season_length": SEASON,
        "patch_len": SEASON,
        "normalize": "window",
        "seasonal_skip": 168,
        "hidden_size": args.hidden,
        "num_layers": 2,
        "dropout": 0.1,
        "lr_schedule": "onecycle",
        "learning_rate": 3e-3,
        "loss_scale": "window",
        "batch_size": 256,
        "windows_per_epoch": args.windows_per_epoch,
        "max_epochs": args.epochs,
        "patience": args.epochs,
        "seed": 0,
        "val_size": HORIZON,
        "test_size": HORIZON,  # ModelGroup: at least one horizon
        "max_fill": 0,
        "restore": args.restore,
    }


def setup_environment(workdir: Path) -> Path:
    """A project directory with its own store, tracking and Prefect home; returns the project
    file. Set before Prefect and MLflow are imported."""
    (workdir / "tmp").mkdir(parents=True, exist_ok=True)
    os.environ["TMPDIR"] = str(workdir / "tmp")
    tempfile.tempdir = None
    os.environ["SEQCAST_DATABASE_URL"] = f"sqlite:///{workdir / 'seqcast.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{workdir / 'mlflow.db'}"
    os.environ["SEQCAST_EXPERIMENT"] = "seqcast-bench-m4-flow"
    os.environ["PREFECT_HOME"] = str(workdir / "prefect")
    os.environ.pop("PREFECT_API_URL", None)  # a temporary local API
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
    os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    os.chdir(workdir)  # MLflow's artifacts (./mlruns) stay in the project directory
    return workdir / "seqcast.yaml"


def write_project(path: Path, settings: dict[str, Any]) -> None:
    """The project file: its URLs and the one group, every setting given."""
    project = {
        "version": 1,
        "urls": {
            "database": os.environ["SEQCAST_DATABASE_URL"],
            "mlflow": os.environ["MLFLOW_TRACKING_URI"],
        },
        "groups": [
            {
                "name": GROUP,
                "select": {"kind": KIND, "freq": "h"},
                "horizon": HORIZON,
                "derive": False,
                "settings": settings,
            }
        ],
    }
    path.write_text(yaml.safe_dump(project, sort_keys=False))


def flow_path(config: Path, train: dict[str, np.ndarray]) -> dict[str, Any]:
    """Ingest, train-forecasters, forecast; the forecasts read back from latest_forecasts."""
    from mlflow.tracking import MlflowClient
    from sqlalchemy import text

    from db import make_engine
    from db.migrate import upgrade
    from flows.series.forecast import forecast
    from flows.series.ingest import ingest
    from flows.series.params import ForecastParams, IngestParams, TrainParams
    from flows.series.train import train_forecasters

    csv = config.parent / "m4-hourly.csv"
    frame = long_frame(train)
    frame["ts"] = frame["ts"].map(lambda t: t.isoformat())
    frame.to_csv(csv, index=False)
    engine = make_engine(os.environ["SEQCAST_DATABASE_URL"])
    upgrade(engine)
    t0 = time.perf_counter()
    [batch] = ingest(IngestParams(paths=[str(csv)], kind=KIND, freq="h", config=str(config)))
    t1 = time.perf_counter()
    summary = train_forecasters(TrainParams(config=str(config)))
    t2 = time.perf_counter()
    trained = summary.group(GROUP)
    candidate = trained.candidate(CELL)
    alias = "champion"
    if not trained.decision.promoted:  # a tiny budget can lose to seasonal naive
        alias = BENCH_ALIAS
        MlflowClient().set_registered_model_alias(
            trained.registered_model, alias, candidate.version
        )
    forecast(ForecastParams(config=str(config), alias=alias))
    t3 = time.perf_counter()
    with engine.connect() as conn:
        rows = pd.read_sql(
            text(
                "SELECT series_id, ts, step, yhat, model_version FROM latest_forecasts "
                "WHERE model_name = :m ORDER BY series_id, step"
            ),
            conn,
            params={"m": trained.registered_model},
        )
    engine.dispose()
    run_metrics = MlflowClient().get_run(candidate.run_id).data.metrics
    return {
        "forecasts": rows,
        "ingest": {k: batch[k] for k in ("received", "accepted", "rejected")},
        "registered_model": trained.registered_model,
        "version": candidate.version,
        "promoted": trained.decision.promoted,
        "promotion_reason": trained.decision.reason,
        "alias": alias,
        "backtest_mase": candidate.metrics.get("backtest_mase"),
        "seasonal_naive_mase": candidate.metrics.get("seasonal_naive_mase"),
        "fit_s": run_metrics.get("train_seconds"),
        "epochs": run_metrics.get("epochs_run"),
        "ingest_s": t1 - t0,
        "train_flow_s": t2 - t1,
        "forecast_flow_s": t3 - t2,
    }


def check_rows(rows: pd.DataFrame, train: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Forecast rows -> {id: 48 values}; every series, steps 1..48 after its last point."""
    end = pd.Timestamp("2020-01-01", tz="UTC")  # long_frame's common last hour
    expected = pd.date_range(end, periods=HORIZON + 1, freq="h")[1:]
    out = {}
    for sid, g in rows.groupby("series_id"):
        ts = pd.to_datetime(g["ts"], utc=True)
        if list(g["step"]) != list(range(1, HORIZON + 1)) or not (ts.to_numpy() == expected).all():
            raise SystemExit(f"{sid}: forecast rows are not steps 1..{HORIZON} after {end}")
        out[str(sid)] = g["yhat"].to_numpy(dtype=np.float64)
    missing = sorted(set(train) - set(out))
    if missing:
        raise SystemExit(f"no forecast for {len(missing)} series, e.g. {missing[:3]}")
    return out


def direct_path(settings: dict[str, Any], train: dict[str, np.ndarray]) -> dict[str, Any]:
    """The same spec, built by ModelGroup.spec, fit and predicted without the service."""
    from flows.series.params import ModelGroup
    from forecasting.forecaster import GlobalForecaster

    group = ModelGroup(name=GROUP, series_kind=KIND, series_freq="h", horizon=HORIZON, **settings)
    spec = group.spec(CELL)
    frame = long_frame(train)
    forecaster = GlobalForecaster(spec)
    t0 = time.perf_counter()
    result = forecaster.fit(frame, dict.fromkeys(train, "h"))
    t1 = time.perf_counter()
    out, skipped = forecaster.predict(frame)
    t2 = time.perf_counter()
    if skipped:
        raise SystemExit(f"direct: series not forecast: {skipped}")
    fc = {str(k): g.sort_values("step")["yhat"].to_numpy() for k, g in out.groupby("series_id")}
    return {
        "forecasts": fc,
        "spec": spec,
        "fit_s": t1 - t0,
        "predict_s": t2 - t1,
        "epochs": float(len(result.history)),
        "best_epoch": float(result.best_epoch),
        "kept_epoch": float(result.kept_epoch),
    }


def scores(
    forecasts: dict[str, np.ndarray],
    train: dict[str, np.ndarray],
    actual: dict[str, np.ndarray],
    ref: dict[str, float] | None = None,
) -> dict[str, float]:
    """sMAPE, MASE and (given Naive2's scores) OWA over every series."""
    ids = list(train)
    s = float(np.mean([smape(actual[k], forecasts[k]) for k in ids]))
    m = float(np.mean([mase(train[k], actual[k], forecasts[k]) for k in ids]))
    out = {"smape": s, "mase": m}
    if ref is not None:
        out["owa"] = 0.5 * (s / ref["smape"] + m / ref["mase"])
    return out


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=Path, default=DEFAULT_TRAIN)
    parser.add_argument("--series", type=int, help="the first N series (default: all 414)")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--windows-per-epoch", type=int, default=25_600)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--path", choices=("both", "flow", "direct"), default="both")
    parser.add_argument(
        "--restore", choices=("best", "last", "significant"), default="best",
        help="the weights training ends with (TrainConfig.restore)",
    )  # fmt: skip
    parser.add_argument("--workdir", type=Path, help="project directory (default: a new temp)")
    parser.add_argument("--out", type=Path, default=BENCH / "results" / "m4_flow.json")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    args.out = args.out.resolve()
    import torch

    torch.set_num_threads(args.threads)
    if not args.train.exists():
        raise SystemExit(f"{args.train}: not found (M4 Hourly-train.csv from ../shared/data)")
    full = read_wide(args.train)
    chosen = list(full)[: args.series] if args.series else list(full)
    train = {k: full[k][:-HORIZON] for k in chosen}
    actual = {k: full[k][-HORIZON:] for k in chosen}
    ref = scores({k: naive2(train[k], HORIZON, SEASON) for k in chosen}, train, actual)
    settings = recipe(args)
    result: dict[str, Any] = {
        "series": len(chosen),
        "settings": settings,
        "args": {k: str(v) for k, v in vars(args).items()},
        "machine": machine(),
        "Naive2": ref,
    }
    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="seqcast-m4-flow-"))).resolve()
    config = setup_environment(workdir)  # before anything imports Prefect or MLflow
    result["workdir"] = str(workdir)
    forecasts: dict[str, dict[str, np.ndarray]] = {}
    if args.path in ("both", "direct"):
        direct = direct_path(settings, train)
        forecasts["direct"] = direct.pop("forecasts")
        spec = direct.pop("spec")
        result["direct"] = {**scores(forecasts["direct"], train, actual, ref), **direct}
        print(f"direct: {result['direct']}", flush=True)
    if args.path in ("both", "flow"):
        write_project(config, settings)
        flow = flow_path(config, train)
        forecasts["flow"] = check_rows(flow.pop("forecasts"), train)
        result["flow"] = {**scores(forecasts["flow"], train, actual, ref), **flow}
        print(f"flow: {result['flow']}", flush=True)
        if "direct" in forecasts:
            from flows.tracking.registry import load_model

            loaded = load_model(flow["registered_model"], flow["version"])
            result["same_spec"] = loaded.spec == spec
    if len(forecasts) == 2:
        diff = [np.max(np.abs(forecasts["flow"][k] - forecasts["direct"][k])) for k in chosen]
        result["owa_difference"] = result["flow"]["owa"] - result["direct"]["owa"]
        result["max_abs_forecast_difference"] = float(np.max(diff))
        result["bit_identical"] = all(
            np.array_equal(forecasts["flow"][k], forecasts["direct"][k]) for k in chosen
        )
    result["load_average_1m_end"] = round(os.getloadavg()[0], 2)
    print(f"\nM4 Hourly, {len(chosen)} series, last {HORIZON} points of each training series")
    for name in ("direct", "flow"):
        if name in result:
            r = result[name]
            print(f"{name:<8} sMAPE {r['smape']:.3f}  MASE {r['mase']:.3f}  OWA {r['owa']:.4f}"
                  f"  fit {r['fit_s']:.0f} s")  # fmt: skip
    if "owa_difference" in result:
        print(f"OWA flow - direct: {result['owa_difference']:+.6f}; max |forecast difference| "
              f"{result['max_abs_forecast_difference']:.3g}; bit-identical "
              f"{result['bit_identical']}; same spec {result.get('same_spec')}")  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=str))


if __name__ == "__main__":
    main()
