"""The hourly forecast's read stays flat when history grows: 10k vs 100k points per series.

Usage: ``python bench/forecast_reads.py [--series 3] [--repeats 5] [--postgres URL]``. For
SQLite (a temp file) and PostgreSQL (a throwaway schema; default the local ``test``
database, skipped with a note when unreachable) it stores ``--series`` 5-minute series of
10,000 and then 100,000 points, and times (median of ``--repeats``) the forecast's read
(:func:`flows.series.data.read_recent_group`, catalog included) beside the full read that
training does (:func:`read_group`), printing rows read and milliseconds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from sqlalchemy import Engine, create_engine, insert, text

from db import make_engine
from db.migrate import upgrade
from db.schema import observations, series
from flows.series.data import GroupData, read_group, read_recent_group
from flows.series.params import ModelGroup

GROUP = ModelGroup(name="bench", series_kind="sensor", window=288)
POINTS_NEEDED = 288 + 3 + 2  # history_needed() of a model with window 288, max_fill 3
PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def fill(engine: Engine, n_series: int, length: int) -> None:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    with engine.begin() as conn:
        conn.execute(
            insert(series),
            [
                {"series_id": f"s{i}", "kind": "sensor", "freq": "5min", "created_at": now}
                for i in range(n_series)
            ],
        )
        rng = np.random.default_rng(0)
        for i in range(n_series):
            values = rng.normal(100, 10, length).tolist()
            rows = [
                {"series_id": f"s{i}", "ts": now + dt.timedelta(minutes=5 * k), "value": v}
                for k, v in enumerate(values)
            ]
            for lo in range(0, length, 20_000):
                conn.execute(insert(observations), rows[lo : lo + 20_000])
        if engine.dialect.name == "postgresql":
            conn.execute(text("ANALYZE"))


def timed(read: Callable[[], GroupData], repeats: int) -> tuple[int, float]:
    read()  # warm the cache and the connection pool
    times, rows = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        rows = read().rows
        times.append(time.perf_counter() - start)
    return rows, 1000 * statistics.median(times)


@contextmanager
def sqlite_engine(root: Path, name: str) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{root / name}.db")
    yield engine
    engine.dispose()


@contextmanager
def postgres_engine(url: str) -> Iterator[Engine]:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    engine = make_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def postgres_reachable(url: str) -> bool:
    try:
        with create_engine(url, connect_args={"connect_timeout": 3}).connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:  # any driver or network error: report and skip
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--postgres", default=PG_DEFAULT)
    args = parser.parse_args()
    print(f"{args.series} series, forecast read of {POINTS_NEEDED} grid steps per series")
    print(f"{'database':<11}{'points/series':>14}{'forecast rows':>15}{'forecast ms':>13}"
          f"{'full rows':>11}{'full ms':>10}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        databases = ["sqlite"] + (["postgresql"] if postgres_reachable(args.postgres) else [])
        if len(databases) == 1:
            print(f"(PostgreSQL at {args.postgres} not reachable: skipped)")
        for db in databases:
            for length in (10_000, 100_000):
                with (
                    sqlite_engine(Path(tmp), f"n{length}")
                    if db == "sqlite"
                    else postgres_engine(args.postgres)
                ) as engine:
                    upgrade(engine)
                    fill(engine, args.series, length)
                    recent = timed(
                        lambda: read_recent_group(engine, GROUP, POINTS_NEEDED), args.repeats
                    )
                    full = timed(lambda: read_group(engine, GROUP), args.repeats)
                print(f"{db:<11}{length:>14,}{recent[0]:>15,}{recent[1]:>13.1f}"
                      f"{full[0]:>11,}{full[1]:>10.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
