"""Where PostgreSQL ingest time goes: each stage of writing N observations, timed alone.

    .venv/bin/python bench/db_stages.py [--rows N] [--postgres-url URL]

Prints one line per stage (seconds and rows/s) for N synthetic rows (bench/db_write.py's
data) in a scratch database created and dropped here: the client side (validation, building
COPY text as ``DataFrame.to_csv`` did before migration 0007, building binary COPY data), and
the server side, each in its own transaction on empty tables: COPY text and binary into the
temporary stage, ANALYZE of the stage, the merge (``INSERT ... ON CONFLICT ... RETURNING``)
and a direct COPY into an observations-shaped table with the foreign keys seqcast had before
0007 (series and batch), with the series key only, and into ``observations`` as 0007 has it
(set-based reference check), then the repeat check's join. Writes nothing else.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import uuid
from collections.abc import Callable
from typing import Any

import pandas as pd
from common import Timer, load_average
from db_write import DEFAULT_PG, SPEC, observations_frame, with_row_numbers
from sqlalchemy import Connection, create_engine, text

from db import make_engine
from db.batches import begin_batch
from db.bulk import CopyColumn, binary_copy_data, copy_binary, utc_text
from db.migrate import upgrade
from db.observation_writes import _columns
from db.observations import declare_series
from db.validation import validate_observations

STAGE = (
    "CREATE TEMP TABLE stage_observations (series_id text, ts timestamptz, "
    "value double precision, row_number bigint)"
)
SHAPED = (
    "CREATE TABLE {name} (series_id varchar(200) {series_fk}, ts timestamptz, "
    "value double precision NOT NULL, batch_id integer {batch_fk}, PRIMARY KEY (series_id, ts))"
)
MERGE = (
    "WITH merged AS (INSERT INTO {table} (series_id, ts, value, batch_id) "
    "SELECT series_id, ts, value, :b FROM stage_observations ON CONFLICT (series_id, ts) "
    "DO UPDATE SET value = excluded.value, batch_id = excluded.batch_id "
    "WHERE {table}.value IS DISTINCT FROM excluded.value RETURNING (xmax = 0) AS fresh) "
    "SELECT COUNT(*) FILTER (WHERE fresh) FROM merged"
)
TABLES = {
    "obs_two_fks": ("REFERENCES series", "REFERENCES ingest_batches"),
    "obs_series_fk": ("REFERENCES series", ""),
    "obs_no_fk": ("", ""),
}


def csv_text(accepted: pd.DataFrame) -> str:
    """The COPY text the pre-0007 path built (db.bulk.copy_csv)."""
    ts = utc_text(accepted["ts"], "%Y-%m-%dT%H:%M:%S.%f+00:00")  # each distinct time once
    buf = io.StringIO()
    accepted[["series_id", "ts", "value", "row_number"]].assign(ts=ts).to_csv(
        buf, index=False, header=False
    )
    return buf.getvalue()


def copy_text(conn: Connection, table: str, data: str) -> None:
    raw = conn.connection.driver_connection
    statement = f"COPY {table} (series_id, ts, value, row_number) FROM STDIN (FORMAT csv)"
    with raw.cursor() as cur, cur.copy(statement) as cp:  # type: ignore[union-attr]
        cp.write(data)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--postgres-url", default=DEFAULT_PG)
    args = parser.parse_args()
    n = args.rows
    name = f"bench_stages_{uuid.uuid4().hex[:8]}"
    admin = create_engine(args.postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    engine = make_engine(args.postgres_url.rsplit("/", 1)[0] + "/" + name)
    lines: list[tuple[str, float]] = []

    def stage(what: str, fn: Callable[[], Any]) -> Any:
        with Timer() as t:
            out = fn()
        lines.append((what, t.seconds))
        print(f"{what:72} {t.seconds:7.2f} s {n / t.seconds:12,.0f} rows/s", flush=True)
        return out

    try:
        upgrade(engine)
        frame = observations_frame(n)
        batch_id, _ = begin_batch(engine, "stages", "sha")
        with engine.begin() as conn:
            ids = sorted(set(frame["series_id"]))
            declare_series(conn, ids, SPEC, dt.datetime.now(dt.UTC))
            for table, (series_fk, batch_fk) in TABLES.items():
                conn.execute(text(SHAPED.format(name=table, series_fk=series_fk,
                                                batch_fk=batch_fk)))  # fmt: skip
            known = {str(s) for s in conn.execute(text("SELECT series_id FROM series")).scalars()}
        raw = with_row_numbers(frame)
        print(f"{n:,} rows, load average {load_average():.2f}", flush=True)
        accepted = stage("client: validate_observations (db/validation.py)",
                         lambda: validate_observations(raw, known).accepted)  # fmt: skip
        data = stage("client: COPY text via DataFrame.to_csv (before)", lambda: csv_text(accepted))
        stage("client: COPY binary data with numpy (db/bulk.py, after)",
              lambda: binary_copy_data(_columns(accepted, None), n))  # fmt: skip

        def in_tx(table: str, columns: list[CopyColumn]) -> Callable[[], None]:
            def run() -> None:
                with engine.begin() as conn:
                    copy_binary(conn, table, columns, n)

            return run

        with engine.connect() as conn:  # the stage lives as long as this session

            def committed(fn: Callable[[], Any]) -> Callable[[], None]:
                def run() -> None:
                    fn()
                    conn.commit()

                return run

            def sql(statement: str) -> Callable[[], None]:
                return committed(lambda: conn.execute(text(statement), {"b": batch_id}))

            sql(STAGE)()
            stage("server: COPY text into the temp stage",
                  committed(lambda: copy_text(conn, "stage_observations", data)))  # fmt: skip
            sql("TRUNCATE stage_observations")()
            staged = _columns(accepted, None)
            to_stage = committed(lambda: copy_binary(conn, "stage_observations", staged, n))
            stage("client+server: COPY binary into the temp stage", to_stage)
            stage("server: ANALYZE the stage", sql("ANALYZE stage_observations"))
            for table in TABLES:
                stage(f"server: merge INSERT..ON CONFLICT..RETURNING into {table}",
                      sql(MERGE.format(table=table)))  # fmt: skip
            stage("server: merge into observations (0007: set-based reference check)",
                  sql(MERGE.format(table="observations")))  # fmt: skip
            stage("server: repeat check (stage JOIN observations WHERE batch_id)", sql(
                "SELECT count(*) FROM stage_observations s JOIN observations o ON "
                "o.series_id = s.series_id AND o.ts = s.ts WHERE o.batch_id = :b"))  # fmt: skip
            stage("server: same merge again, every row unchanged (observations)",
                  sql(MERGE.format(table="observations")))  # fmt: skip
            sql("TRUNCATE observations, obs_two_fks, obs_series_fk, obs_no_fk")()
        direct = _columns(accepted, batch_id)
        for table in [*TABLES, "observations"]:
            label = "0007: set-based reference check" if table == "observations" else table
            stage(f"client+server: direct COPY binary into {label}", in_tx(table, direct))
        print(f"load average {load_average():.2f} after", flush=True)
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
