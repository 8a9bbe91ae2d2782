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
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

REPO = Path(__file__).resolve().parents[1]
EXPERIMENT = "seqcast-soak"
STOCK_SERIES_KIND = "price"


@dataclass
class Sample:
    run: int
    seconds: float
    rss_mb: float
    fds: int
    db_conns: int
    db_conns_all: int | None  # PostgreSQL: every client of the database, not only ours
    mlflow_conns: int
    tmp_mb: float
    children_mb: float
    forecast_created: bool
    rows_inserted: int


@dataclass
class Verdict:
    ok: bool = True
    lines: list[str] = field(default_factory=list)

    def check(self, failed: bool, text: str) -> None:
        self.lines.append(("FAIL " if failed else "ok   ") + text)
        self.ok = self.ok and not failed


# ---------------------------------------------------------------- measurements (Linux /proc)


def rss_mb(pid: int | str = "self") -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:  # the process went away
        pass
    return 0.0


def fd_targets() -> list[str]:
    targets = []
    for name in os.listdir("/proc/self/fd"):
        try:
            targets.append(os.readlink(f"/proc/self/fd/{name}"))
        except OSError:  # closed meanwhile (the listing's own descriptor)
            continue
    return targets


def children_rss_mb() -> float:
    """RSS of all descendants of this process (Prefect's temporary server and the like)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...; comm may contain spaces and parentheses
        parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    me, total = os.getpid(), 0.0
    for pid in parents:
        p = parents.get(pid)
        while p is not None and p != me and p > 1:
            p = parents.get(p)
        if p == me:
            total += rss_mb(pid)
    return total


def dir_mb(path: Path) -> float:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                continue
    return total / 2**20


# ---------------------------------------------------------------- set-up


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
    from flows.params import IngestParams, ModelGroup, PipelineParams
    from flows.pipeline import pipeline

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
        fc = summary.get("forecast", {}).get(group.name, {})
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
                forecast_created=bool(fc.get("created")),
                rows_inserted=sum(int(b.get("inserted", 0)) for b in summary.get("ingest", [])),
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


def fmt_conns(s: Sample) -> str:
    return str(s.db_conns) if s.db_conns_all is None else f"{s.db_conns}/{s.db_conns_all}"


HEADER = (
    f"{'run':>5} {'s/run':>6} {'RSS MB':>8} {'fds':>5} {'db conns':>9} {'mlflow conns':>12} "
    f"{'tmp MB':>7} {'children MB':>11} {'new obs':>7}"
)


def print_row(block: list[Sample]) -> None:
    """One table row: the state after the block's last run, seconds averaged over the block."""
    s = block[-1]
    timed = [x.seconds for x in block if x.run > 1] or [s.seconds]
    print(
        f"{s.run:>5} {statistics.fmean(timed):>6.2f} {s.rss_mb:>8.1f} {s.fds:>5} "
        f"{fmt_conns(s):>9} {s.mlflow_conns:>12} {s.tmp_mb:>7.1f} {s.children_mb:>11.1f} "
        f"{sum(x.rows_inserted for x in block):>7}",
        flush=True,
    )


def slope_per_run(xs: list[float], ys: list[float]) -> float:
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return 0.0 if den == 0 else sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den


def summarize(samples: list[Sample], args: argparse.Namespace, total: float, pg: bool) -> Verdict:
    verdict = Verdict()
    if len(samples) < 4:
        print("soak: too few runs to judge")
        verdict.ok = False
        return verdict
    n = len(samples)
    warmup = max(2, n // 10)
    mid = max(warmup + 1, n // 2)
    second = samples[mid - 1 :]  # runs mid..n
    baseline = samples[warmup:mid] or samples[warmup : warmup + 1]  # after warm-up, 1st half
    tail = samples[-max(3, n // 20) :]

    xs = [float(s.run) for s in second]
    rss = [s.rss_mb for s in second]
    slope = slope_per_run(xs, rss)
    start_fit = statistics.fmean(rss) + slope * (xs[0] - statistics.fmean(xs))
    rss_growth = slope * (xs[-1] - xs[0]) / start_fit if start_fit else math.inf
    later = [s.seconds for s in samples[1:]]

    def growth(attr: str) -> int:
        # A leak raises the floor; pools that fluctuate raise only the peaks.
        return int(min(getattr(s, attr) for s in tail) - max(getattr(s, attr) for s in baseline))

    first, final = samples[0], samples[-1]
    conn_label = "PostgreSQL connections (ours/all)" if pg else "SQLite connections (db fds)"
    rows = [
        ("runs", f"{n} in {total:.0f} s; first (trains) {first.seconds:.1f} s"),
        (
            "seconds per later run",
            f"mean {statistics.fmean(later):.2f}, median {statistics.median(later):.2f}, "
            f"max {max(later):.2f}",
        ),
        (
            "RSS MB first/last/max",
            f"{first.rss_mb:.1f} / {final.rss_mb:.1f} / {max(s.rss_mb for s in samples):.1f}",
        ),
        (
            f"RSS slope, runs {second[0].run}-{final.run}",
            f"{slope * 100:+.1f} MB per 100 runs ({rss_growth * 100:+.1f} % over the half)",
        ),
        ("open fds first/last", f"{first.fds} / {final.fds} (growth {growth('fds'):+d})"),
        (
            f"{conn_label} first/last",
            f"{fmt_conns(first)} / {fmt_conns(final)} (growth {growth('db_conns'):+d})",
        ),
        (
            "MLflow store connections first/last",
            f"{first.mlflow_conns} / {final.mlflow_conns} (growth {growth('mlflow_conns'):+d})",
        ),
        ("temp dir MB first/last", f"{first.tmp_mb:.1f} / {final.tmp_mb:.1f}"),
        ("child processes RSS MB first/last", f"{first.children_mb:.1f} / {final.children_mb:.1f}"),
        (
            "new observations / new forecast runs",
            f"{sum(s.rows_inserted for s in samples)} / {sum(s.forecast_created for s in samples)}",
        ),
    ]
    width = max(len(k) for k, _ in rows)
    print("\nsoak summary")
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")
    verdict.check(
        growth("fds") > args.fd_tolerance,
        f"open fds grew {growth('fds'):+d} (tolerance {args.fd_tolerance})",
    )
    for attr, label in (("db_conns", "database"), ("mlflow_conns", "MLflow store")):
        verdict.check(
            growth(attr) > args.conn_tolerance,
            f"{label} connections grew {growth(attr):+d} (tolerance {args.conn_tolerance})",
        )
    verdict.check(
        rss_growth > args.rss_tolerance,
        f"RSS grew {rss_growth * 100:+.1f} % over runs {second[0].run}-{final.run} "
        f"(tolerance {args.rss_tolerance * 100:.0f} %)",
    )
    print("\n".join("  " + line for line in verdict.lines))
    return verdict


if __name__ == "__main__":
    sys.exit(main())
