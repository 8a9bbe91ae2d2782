"""Database write throughput: seqcast's ingest and forecast write-back against pandas to_sql.

    .venv/bin/python bench/db_write.py [--quick] [--rows N] [--postgres-url URL] [--profile]

Writes bench/results/perf/ingest.json and writeback.json:

- ingest: N synthetic observations (100 hourly series) through ``db.ingest.ingest_chunks``,
  what ``seqcast ingest`` does for an in-memory source (100,000-row chunks, validation,
  staging, rejects, batch bookkeeping), against ``DataFrame.to_sql`` of the same frame into a
  table with the columns, primary key and foreign keys of ``observations``; then the re-run
  of that batch (already loaded) and a second batch half overlapping it with new values.
- writeback: N forecast rows of one run (100 steps per series) through
  ``db.forecasts.write_forecast_run`` (one transaction) against ``to_sql`` of the same rows
  into a table shaped like ``forecasts`` (same keys and index).

Fresh databases: a SQLite file in a temporary folder and a scratch PostgreSQL database created
and dropped here. Each measured thing runs once after a small warm-up, the reference (to_sql
with pandas' defaults, then method="multi") and seqcast back to back; targets compare seqcast
with the faster to_sql variant.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import pstats
import shutil
import signal
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from common import Timer, load_average, target, write_result
from sqlalchemy import Engine, create_engine, text

from db import make_engine
from db.forecasts import ForecastRun, write_forecast_run
from db.ingest import ingest_chunks
from db.migrate import upgrade
from db.observations import SeriesSpec, declare_series

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SPEC = SeriesSpec("sensor", "h")
N_SERIES = 100
HORIZON = 100
MULTI_SAMPLE = 50_000  # rows to_sql(method="multi") is tried on first (see reference())
CHUNK_ROWS = 100_000  # flows.sources.readers.CHUNK_ROWS (db/ must not import flows/)
TARGETS = {"postgresql": 5.0, "sqlite": 2.0}
START = pd.Timestamp("2020-01-01", tz="UTC")
# The reference tables have the primary key and foreign keys of seqcast's tables (batch_id is
# not in the to_sql frame, so that foreign key does not apply to it).
REF_DDL = {
    "ingest": "CREATE TABLE ref_observations (series_id VARCHAR(200) NOT NULL "
    "REFERENCES series (series_id), ts {ts} NOT NULL, value {float} NOT NULL, "
    "PRIMARY KEY (series_id, ts))",
    "writeback": "CREATE TABLE ref_forecasts (run_id INTEGER NOT NULL "
    "REFERENCES forecast_runs (run_id) ON DELETE CASCADE, series_id VARCHAR(200) NOT NULL "
    "REFERENCES series (series_id), ts {ts} NOT NULL, step INTEGER NOT NULL, "
    "yhat {float} NOT NULL, yhat_lower {float}, yhat_upper {float}, "
    "PRIMARY KEY (run_id, series_id, ts))",
}
REF_INDEX = "CREATE INDEX ix_ref_forecasts_series_ts ON ref_forecasts (series_id, ts)"


def observations_frame(n_rows: int, shift_hours: int = 0, seed: int = 0) -> pd.DataFrame:
    """``n_rows`` synthetic hourly points over N_SERIES series (series_id, ts, value)."""
    per_series = -(-n_rows // N_SERIES)
    idx = np.arange(n_rows)
    sid = np.array([f"sensor-{i:03d}" for i in range(N_SERIES)], dtype=object)
    hours = idx % per_series + shift_hours
    return pd.DataFrame(
        {
            "series_id": sid[idx // per_series],
            "ts": START + pd.to_timedelta(hours, unit="h"),
            "value": np.round(np.random.default_rng(seed).normal(20, 5, n_rows), 3),
        }
    )


def forecast_frame(n_rows: int) -> pd.DataFrame:
    """``n_rows`` forecast rows: HORIZON steps for each of n_rows / HORIZON series."""
    idx = np.arange(n_rows)
    step = idx % HORIZON + 1
    n_series = -(-n_rows // HORIZON)
    sid = np.array([f"fc-{i:05d}" for i in range(n_series)], dtype=object)
    yhat = np.random.default_rng(1).normal(20, 5, n_rows)
    return pd.DataFrame(
        {
            "series_id": sid[idx // HORIZON],
            "ts": START + pd.to_timedelta(step, unit="h"),
            "step": step,
            "yhat": yhat,
            "yhat_lower": yhat - 2.0,
            "yhat_upper": yhat + 2.0,
        }
    )


def with_row_numbers(frame: pd.DataFrame) -> pd.DataFrame:  # as a source hands it to db.ingest
    return frame.assign(row_number=np.arange(2, len(frame) + 2), read_error="")


def ingest(engine: Engine, frame: pd.DataFrame, source: str) -> Any:
    chunks = (frame.iloc[i : i + CHUNK_ROWS] for i in range(0, len(frame), CHUNK_ROWS))
    return ingest_chunks(engine, chunks, source, f"sha-{source}", SPEC)


def forecast_run(tag: str, horizon: int = HORIZON) -> ForecastRun:
    return ForecastRun("bench", "1", "mlflow-run", horizon, START.to_pydatetime(), f"in-{tag}")


def multi_chunksize(engine: Engine, n_columns: int) -> int:
    """10,000 rows, or fewer where the driver's bound-parameter limit would be exceeded."""
    return min(10_000, (65_535 if engine.dialect.name == "postgresql" else 32_766) // n_columns)


def to_sql(engine: Engine, frame: pd.DataFrame, table: str, multi: bool) -> None:
    kwargs: dict[str, Any] = {}
    if multi:
        kwargs = {"method": "multi", "chunksize": multi_chunksize(engine, frame.shape[1])}
    frame.to_sql(table, engine, if_exists="append", index=False, **kwargs)


class Scratch:
    """A fresh database of one kind with seqcast's schema and the reference tables."""

    def __init__(self, kind: str, pg_url: str, tmp: Path) -> None:
        self.kind, self.pg_url, self.tmp = kind, pg_url, tmp
        self.name = f"bench_dbwrite_{uuid.uuid4().hex[:8]}"
        if kind == "sqlite":
            self.url = f"sqlite:///{tmp / (self.name + '.db')}"
        else:
            self._admin("CREATE DATABASE {}")
            self.url = pg_url.rsplit("/", 1)[0] + "/" + self.name
        self.engine = make_engine(self.url)
        upgrade(self.engine)
        types = {"ts": "TIMESTAMPTZ", "float": "DOUBLE PRECISION"} if kind == "postgresql" else {}
        with self.engine.begin() as conn:
            for ddl in [*REF_DDL.values(), REF_INDEX]:
                conn.execute(text(ddl.format(**(types or {"ts": "DATETIME", "float": "FLOAT"}))))

    def _admin(self, sql: str) -> None:
        admin = create_engine(self.pg_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(sql.format(self.name)))
        admin.dispose()

    def clear(self) -> None:
        """Empty every table the benches write (after a warm-up)."""
        tables = [
            "ref_observations", "ref_forecasts", "forecasts", "forecast_runs", "rejected_rows",
            "observations", "ingest_batches", "source_watermarks", "series",
        ]  # fmt: skip
        with self.engine.begin() as conn:
            for t in tables:
                conn.execute(text(f"DELETE FROM {t}"))
        if self.kind == "postgresql":
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM ANALYZE"))

    def count(self, table: str) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one())

    def close(self) -> None:
        self.engine.dispose()
        if self.kind == "postgresql":
            self._admin("DROP DATABASE IF EXISTS {} WITH (FORCE)")


def reference(db: Scratch, frame: pd.DataFrame, table: str) -> dict[str, float]:
    """Seconds per row of to_sql with pandas' defaults and with method="multi".

    The multi variant is measured on the first MULTI_SAMPLE rows first and again on all rows
    only when it is the faster one there (it is several times slower with SQLAlchemy 2).
    """
    spr: dict[str, float] = {}
    for variant, rows in (("default", frame), ("multi", frame.iloc[:MULTI_SAMPLE])):
        for attempt in (rows, frame) if variant == "multi" else (rows,):
            multi = variant == "multi"
            seconds, _ = timed(lambda a=attempt, m=multi: to_sql(db.engine, a, table, m))
            assert db.count(table) == len(attempt)
            with db.engine.begin() as conn:
                conn.execute(text(f"DELETE FROM {table}"))
            spr[variant] = seconds / len(attempt)
            if variant == "multi" and (
                spr["multi"] >= spr["default"] or len(attempt) == len(frame)
            ):
                break
    return spr


def multi_row(spr: dict[str, float], n: int) -> list[Any]:
    """rows, seconds, rows/s, remark for the multi variant (measured on fewer rows if slower)."""
    rows = n if spr["multi"] < spr["default"] else min(n, MULTI_SAMPLE)
    note = "" if rows == n else f"measured on the first {rows:,} rows (slower than defaults)"
    return [rows, spr["multi"] * rows, 1 / spr["multi"], note]


def declare(db: Scratch, frame: pd.DataFrame) -> None:
    with db.engine.begin() as conn:
        declare_series(conn, sorted(set(frame["series_id"])), SPEC, dt.datetime.now(dt.UTC))


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    with Timer() as t:
        out = fn()
    return t.seconds, out


def profiled(fn: Callable[[], Any], kind: str, what: str) -> list[str]:
    """Run ``fn`` under cProfile; the top 8 functions by cumulative and by own time."""
    prof = cProfile.Profile()
    prof.runcall(fn)
    stats = pstats.Stats(prof)
    total = max(stats.total_tt, 1e-9)  # type: ignore[attr-defined]
    lines = [f"{what} on {kind}: {total:.2f} s under cProfile"]
    rows = stats.stats  # type: ignore[attr-defined]
    for key, label in ((3, "cumulative"), (2, "own")):
        mine = {k: v for k, v in rows.items() if Path(k[0]).name != "db_write.py"}
        top = sorted(mine.items(), key=lambda kv: kv[1][key], reverse=True)[:8]
        for (file, line, func), st in top:
            where = f"{Path(file).parent.name}/{Path(file).name}:{line}" if line else file
            lines.append(f"  {label} {st[key]:.2f} s ({st[key] / total:.0%}) {func} [{where}]")
    return lines


def bench_ingest(db: Scratch, n: int, profile: bool) -> tuple[list[list[Any]], dict[str, Any]]:
    frame_a = observations_frame(n)
    frame_b = observations_frame(n, shift_hours=(n // N_SERIES) // 2, seed=1)
    frame_b["value"] += 1000.0  # every overlapping key gets a new value
    raw_a, raw_b = with_row_numbers(frame_a), with_row_numbers(frame_b)
    warm = observations_frame(2_000, seed=2)
    declare(db, warm)
    to_sql(db.engine, warm, "ref_observations", multi=False)
    ingest(db.engine, with_row_numbers(warm), "warmup")
    db.clear()
    declare(db, frame_a)  # for the reference's foreign key; seqcast finds them declared
    ref = reference(db, frame_a, "ref_observations")
    s_first, r_first = timed(lambda: ingest(db.engine, raw_a, "batch-a"))
    assert r_first.received == r_first.accepted == r_first.inserted == n, r_first
    s_again, r_again = timed(lambda: ingest(db.engine, raw_a, "batch-a"))
    assert r_again.already_loaded
    s_upsert, r_upsert = timed(lambda: ingest(db.engine, raw_b, "batch-b"))
    assert r_upsert.accepted == n and r_upsert.inserted + r_upsert.updated == n, r_upsert
    best = min(ref.values()) * n
    extra: dict[str, Any] = {
        "ratio": best / s_first,
        "best_ref": "to_sql multi" if ref["multi"] < ref["default"] else "to_sql default",
    }
    if profile:
        db.clear()
        declare(db, frame_a)
        extra["profile"] = profiled(lambda: ingest(db.engine, raw_a, "batch-a"), db.kind, "ingest")
    rows = [
        [db.kind, "to_sql (defaults)", n, ref["default"] * n, 1 / ref["default"], ""],
        [db.kind, f'to_sql (method="multi", chunksize={multi_chunksize(db.engine, 3):,})',
         *multi_row(ref, n)],
        [db.kind, "seqcast ingest, empty table", n, s_first, n / s_first, f"{extra['ratio']:.2f}x"],
        [db.kind, "seqcast re-run (already loaded)", n, s_again, n / s_again, ""],
        [db.kind, f"seqcast 2nd batch ({r_upsert.inserted:,} new, {r_upsert.updated:,} updated)",
         n, s_upsert, n / s_upsert, f"{best / s_upsert:.2f}x"],
    ]  # fmt: skip
    return rows, extra


def bench_writeback(db: Scratch, n: int, profile: bool) -> tuple[list[list[Any]], dict[str, Any]]:
    frame = forecast_frame(n)
    warm = forecast_frame(2_000)
    declare(db, frame)
    ref_run = write_forecast_run(db.engine, forecast_run("reference"), frame.iloc[:0]).run_id
    ref_frame = frame.assign(run_id=ref_run)[["run_id", *frame.columns]]
    to_sql(db.engine, warm.assign(run_id=ref_run), "ref_forecasts", multi=False)
    warm_run = write_forecast_run(db.engine, forecast_run("warm"), warm).run_id
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM ref_forecasts"))
        conn.execute(text("DELETE FROM forecast_runs WHERE run_id = :r"), {"r": warm_run})
    ref = reference(db, ref_frame, "ref_forecasts")
    s_write, written = timed(lambda: write_forecast_run(db.engine, forecast_run("a"), frame))
    assert written.created and written.rows == n == db.count("forecasts"), written
    s_again, again = timed(lambda: write_forecast_run(db.engine, forecast_run("a"), frame))
    assert not again.created and again.rows == n
    best = min(ref.values()) * n
    extra: dict[str, Any] = {
        "ratio": best / s_write,
        "best_ref": "to_sql multi" if ref["multi"] < ref["default"] else "to_sql default",
    }
    if profile:
        extra["profile"] = profiled(
            lambda: write_forecast_run(db.engine, forecast_run("p"), frame), db.kind, "write-back"
        )
    rows = [
        [db.kind, "to_sql (defaults)", n, ref["default"] * n, 1 / ref["default"], ""],
        [db.kind, f'to_sql (method="multi", chunksize={multi_chunksize(db.engine, 7):,})',
         *multi_row(ref, n)],
        [db.kind, "seqcast write_forecast_run", n, s_write, n / s_write, f"{extra['ratio']:.2f}x"],
        [db.kind, "seqcast re-run (already written)", n, s_again, n / s_again, ""],
    ]  # fmt: skip
    return rows, extra


NOTES = [
    "to_sql appends into a pre-created table with the columns, primary key and foreign keys "
    "(and, for write-back, the secondary index) of seqcast's table.",
    "Synthetic data (throughput only). Each to_sql and seqcast load starts on an empty table; "
    "timings on a shared machine vary, compare the ratios.",
    "PostgreSQL (migration 0007 on): rows that no stored row can share a key with (outside "
    "their series' stored time range: first loads, appends) are COPYed in binary straight "
    "into observations under per-series advisory locks, the rest staged with a binary COPY "
    "and merged with one INSERT..ON CONFLICT; references are checked once per statement, not "
    "per row. Where the time goes, stage by stage: bench/db_stages.py (bench/README.md).",
]

COLUMNS = ["database", "path", "rows", "seconds", "rows/s", "vs faster to_sql / note"]
BENCHES = {
    "ingest": (bench_ingest, "Ingest: seqcast (db.ingest) vs pandas to_sql, rows/s"),
    "writeback": (bench_writeback, "Forecast write-back: seqcast vs pandas to_sql, rows/s"),
}


def kinds(pg_url: str) -> tuple[list[str], list[str]]:
    try:
        probe = create_engine(pg_url, connect_args={"connect_timeout": 5})
        with probe.connect() as conn:
            conn.execute(text("SELECT 1"))
        probe.dispose()
        return ["sqlite", "postgresql"], []
    except Exception as exc:  # unreachable server: SQLite only, said in the notes
        return ["sqlite"], [f"PostgreSQL skipped: {pg_url} unreachable ({type(exc).__name__})"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="20,000 rows (smoke run)")
    parser.add_argument("--rows", type=int, default=None, help="rows per bench (1,000,000)")
    parser.add_argument("--postgres-url", default=DEFAULT_PG)
    parser.add_argument("--profile", action="store_true", help="cProfile the seqcast paths")
    parser.add_argument("--only", choices=sorted(BENCHES), default=None, help="one bench")
    parser.add_argument("--sqlite-only", action="store_true", help="skip PostgreSQL")
    args = parser.parse_args()
    n = args.rows or (20_000 if args.quick else 1_000_000)
    dbs, notes = kinds(args.postgres_url) if not args.sqlite_only else (["sqlite"], [])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # still drop the scratch database
    tmp = Path(tempfile.mkdtemp(prefix="seqcast-bench-dbwrite-"))
    try:
        for bench, (fn, title) in BENCHES.items():
            if args.only and bench != args.only:
                continue
            rows: list[list[Any]] = []
            targets, profile, bench_notes = [], [], list(notes)
            for kind in dbs:
                db = Scratch(kind, args.postgres_url, tmp)
                try:
                    load_before = load_average()
                    table, extra = fn(db, n, args.profile)
                finally:
                    db.close()
                rows += [[*r[:3], round(r[3], 3), round(r[4]), r[5]] for r in table]
                for r in table:
                    line = f"{r[0]:10} {r[1]:52} {r[3]:8.2f} s {r[4]:12,.0f} rows/s {r[5]}"
                    print(f"{bench:9} {line}", flush=True)
                goal, name = TARGETS[kind], f"{bench} {kind}: seqcast vs {extra['best_ref']}"
                if bench == "ingest":  # the issue sets no target for write-back
                    goal_text = f">= {goal:g}x the faster to_sql variant"
                    targets.append(target(name, goal_text, round(extra["ratio"], 2), goal, "min"))
                else:
                    bench_notes.append(
                        f"{kind}: write-back {extra['ratio']:.2f}x {extra['best_ref']} "
                        f"(no target in the issue; aim >= {goal:g}x, the ingest target)"
                    )
                profile += extra.get("profile", [])
                print("".join(f"{line}\n" for line in extra.get("profile", [])), end="", flush=True)
                bench_notes.append(f"{kind}: load average {load_before:.2f} before, "
                              f"{load_average():.2f} after")  # fmt: skip
            settings = {
                "rows": n,
                "series": N_SERIES if bench == "ingest" else -(-n // HORIZON),
                "chunk_rows": CHUNK_ROWS if bench == "ingest" else n,
                "pandas": pd.__version__,
                "databases": ", ".join(dbs),
                "data": "synthetic (throughput only)",
            }
            table_out = {"columns": COLUMNS, "rows": rows}
            write_result(bench, {"title": title, "settings": settings, "table": table_out,
                                 "targets": targets, "profile": profile,
                                 "notes": [*bench_notes, *NOTES]})  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
