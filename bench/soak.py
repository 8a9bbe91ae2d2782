"""Soak test: run the ``pipeline`` flow many times in one process and watch for leaks.

The first run ingests the bundled stock prices and trains one tiny GRU group; every later run
is the hourly schedule's work: ingest a small CSV with the next business day's price of each
stock series (so there is new data), skip retraining (``retrain_after_hours=1e6``), forecast
and write a new forecast run. After each run the script samples, in this process:

* resident memory (VmRSS from /proc/self/status, after ``gc.collect()``),
* open file descriptors (entries of /proc/self/fd),
* database connections: SQLite, descriptors open on the database file itself (one per open
  connection; -wal/-shm are not counted); PostgreSQL, rows of ``pg_stat_activity`` in the
  database, in all and those with this process's ``application_name``,
* descriptors open on MLflow's SQLite store (its connections), the size of this process's
  temporary directory and the RSS of its child processes (Prefect's temporary API server).

It prints a table every 20 runs and a summary at the end, and exits 1 when descriptors or
connections grew by more than a small tolerance, or RSS by more than 20 %, over the second
half of the runs (after warm-up). Everything lives in a temporary directory (SQLite database,
MLflow store, Prefect home, TMPDIR) that is removed at the end unless ``--keep``.

    .venv/bin/python bench/soak.py --runs 200
    .venv/bin/python bench/soak.py --runs 50 \
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test

With ``--database-url`` pointing at PostgreSQL the run uses a throwaway schema in that
database (dropped at the end unless ``--keep``). Timings are wall-clock and noisy on a shared
machine; the leak checks do not depend on them.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import sys
import tempfile
import time
import traceback
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

REPO = Path(__file__).resolve().parents[1]
EXPERIMENT = "seqcast-soak"
STOCK_SERIES_KIND = "price"


from soak_report import (  # noqa: E402 - bench/ is on sys.path when run as a script
    HEADER,
    Sample,
    children_rss_mb,
    dir_mb,
    fd_targets,
    print_row,
    rss_mb,
    summarize,
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=200, help="pipeline runs (default 200)")
    p.add_argument(
        "--database-url",
        help="PostgreSQL URL to soak against (a throwaway schema is used); default: a "
        "temporary SQLite file",
    )
    p.add_argument("--report-every", type=int, default=20, help="print a table row block")
    p.add_argument("--fd-tolerance", type=int, default=5, help="allowed growth of open fds")
    p.add_argument("--conn-tolerance", type=int, default=1, help="allowed growth of connections")
    p.add_argument("--rss-tolerance", type=float, default=0.20, help="allowed RSS growth (0.2)")
    p.add_argument("--samples", type=Path, help="write every sample to this CSV file")
    p.add_argument("--keep", action="store_true", help="keep the working directory")
    p.add_argument("--verbose", action="store_true", help="Prefect logs at INFO, not WARNING")
    args = p.parse_args(argv)
    if args.runs < 2:
        p.error("--runs must be at least 2 (the first run trains)")
    return args


def with_query(url: str, **params: str) -> str:
    sep = "&" if "?" in url else "?"
    return url + sep + "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items())


def setup_environment(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Set every variable seqcast, Prefect and MLflow read, before any of them is imported."""
    tmp = workdir / "tmp"
    tmp.mkdir()
    os.environ["TMPDIR"] = str(tmp)
    tempfile.tempdir = None  # re-read TMPDIR
    app = f"seqcast-soak-{os.getpid()}"
    info: dict[str, Any] = {"app": app, "tmp": tmp, "schema": None, "admin_url": None}
    if args.database_url and not args.database_url.startswith("sqlite"):
        schema = f"soak_{uuid.uuid4().hex[:10]}"
        info["schema"], info["admin_url"] = schema, args.database_url
        url = with_query(args.database_url, options=f"-csearch_path={schema}", application_name=app)
    else:
        db_file = workdir / "seqcast.db"
        url = args.database_url or f"sqlite:///{db_file}"
        info["db_file"] = Path(url.removeprefix("sqlite:///")).resolve()
    info["url"] = url
    info["mlflow_file"] = workdir / "mlflow.db"
    os.environ["SEQCAST_DATABASE_URL"] = url
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{info['mlflow_file']}"
    os.environ["SEQCAST_EXPERIMENT"] = EXPERIMENT
    os.environ["PREFECT_HOME"] = str(workdir / "prefect")
    os.environ.pop("PREFECT_API_URL", None)  # a temporary local API inside PREFECT_HOME
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ["PREFECT_LOGGING_LEVEL"] = "INFO" if args.verbose else "WARNING"
    os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    return info


# ---------------------------------------------------------------- the soak


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="seqcast-soak-")).resolve()
    info = setup_environment(args, workdir)
    sys.path.insert(0, str(REPO))  # run from a checkout without installing, too

    import numpy as np
    import pandas as pd
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    from db import make_engine
    from db.migrate import upgrade
    from db.observations import list_series, read_observations
    from flows.series.params import IngestParams, ModelGroup, PipelineParams
    from flows.series.pipeline import pipeline
    from flows.series.results import GroupForecast

    postgres = info["schema"] is not None
    admin = None
    if postgres:
        admin = create_engine(info["admin_url"], poolclass=NullPool)
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {info['schema']}"))
    migrate_engine = make_engine(info["url"], poolclass=NullPool)
    upgrade(migrate_engine)
    migrate_engine.dispose()

    group = ModelGroup(
        name="prices",
        series_kind=STOCK_SERIES_KIND,
        window=20,
        horizon=5,
        season_length=5,
        hidden_size=8,
        num_layers=1,
        max_epochs=1,
        windows_per_epoch=256,
        val_size=100,
        test_size=50,
        cells=["gru"],
    )
    rng = np.random.default_rng(0)
    last: pd.DataFrame | None = None  # newest (ts, value) per stock series
    inputs = workdir / "inputs"
    inputs.mkdir()

    def next_day_csv(run: int) -> str:
        """The next business day's price of every stock series (last value +- ~1 %)."""
        nonlocal last
        assert last is not None
        last = last.assign(
            ts=last["ts"] + pd.offsets.BDay(1),
            value=(last["value"] * (1 + rng.normal(0, 0.01, len(last)))).round(4),
        )
        path = inputs / f"run-{run:04d}.csv"
        out = last.assign(ts=last["ts"].map(lambda t: t.isoformat()))
        out[["series_id", "ts", "value"]].to_csv(path, index=False)
        return str(path)

    def read_last() -> pd.DataFrame:
        engine = make_engine(info["url"], poolclass=NullPool)
        try:
            ids = list_series(engine, kind=STOCK_SERIES_KIND)["series_id"].tolist()
            obs = read_observations(engine, ids)
        finally:
            engine.dispose()
        return obs.groupby("series_id").tail(1).reset_index(drop=True)

    monitor = None
    if postgres:
        monitor = create_engine(info["admin_url"], poolclass=NullPool)

    def db_connections() -> tuple[int, int | None, list[str]]:
        targets = fd_targets()
        if monitor is None:
            return sum(t == str(info["db_file"]) for t in targets), None, targets
        with monitor.connect() as conn:
            ours, everyone = conn.execute(
                text(
                    "SELECT count(*) FILTER (WHERE application_name = :app), count(*) "
                    "FROM pg_stat_activity WHERE datname = current_database()"
                ),
                {"app": info["app"]},
            ).one()
        return int(ours), int(everyone) - 1, targets  # minus the monitor's own connection

    backend = "PostgreSQL schema " + info["schema"] if postgres else "SQLite " + info["url"]
    print(f"soak: {args.runs} pipeline runs in pid {os.getpid()}; database {backend}")
    print(f"soak: working directory {workdir}")
    samples: list[Sample] = []
    printed = 0  # samples already shown in the table
    failure: str | None = None
    started = time.perf_counter()
    for run in range(1, args.runs + 1):
        if run == 1:
            params = PipelineParams(
                ingest=IngestParams(bundled=["stocks"]), groups=[group], retrain_after_hours=0
            )
        else:
            params = PipelineParams(
                ingest=IngestParams(paths=[next_day_csv(run)]),
                groups=[group],
                retrain_after_hours=1e6,
            )
        t0 = time.perf_counter()
        try:
            summary = pipeline(params)
        except Exception:
            failure = f"run {run} raised:\n{traceback.format_exc()}"
            break
        seconds = time.perf_counter() - t0
        if run == 1:
            last = read_last()
        gc.collect()
        conns, conns_all, targets = db_connections()
        fc = summary.forecast.outcome(group.name)
        samples.append(
            Sample(
                run=run,
                seconds=seconds,
                rss_mb=rss_mb(),
                fds=len(targets),
                db_conns=conns,
                db_conns_all=conns_all,
                mlflow_conns=sum(t == str(info["mlflow_file"]) for t in targets),
                tmp_mb=dir_mb(info["tmp"]),
                children_mb=children_rss_mb(),
                forecast_created=isinstance(fc, GroupForecast) and fc.created,
                rows_inserted=sum(int(b.get("inserted", 0)) for b in summary.ingest),
            )
        )
        if run > 1 and not samples[-1].forecast_created:
            failure = f"run {run} wrote no new forecast run: {fc}"
            break
        if run == 1:
            print(HEADER)
            print_row(samples)
            printed = 1
        elif run % args.report_every == 0 or run == args.runs:
            print_row(samples[printed:])
            printed = run
    total = time.perf_counter() - started
    if failure and len(samples) > printed:
        print_row(samples[printed:])
    if args.samples:
        pd.DataFrame([s.__dict__ for s in samples]).to_csv(args.samples, index=False)
        print(f"soak: samples written to {args.samples}")
    verdict = summarize(samples, args, total, postgres)

    if monitor is not None:
        monitor.dispose()
    if admin is not None and not args.keep:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {info['schema']} CASCADE"))
        admin.dispose()
    if args.keep:
        print(f"soak: kept {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)

    if failure:
        print(f"soak: FAILED, {failure}", file=sys.stderr)
        return 1
    print("soak: PASS" if verdict.ok else "soak: FAIL (growth above tolerance)")
    return 0 if verdict.ok else 1


# ---------------------------------------------------------------- reporting


if __name__ == "__main__":
    sys.exit(main())
