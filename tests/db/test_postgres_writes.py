"""The COPY paths: binary COPY data, rows copied straight into observations when no stored row
can share their key, the series write locks that make that check safe, and migration 0007's
set-based references (which must refuse what the foreign keys refused, on both databases).
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import numpy as np
import pandas as pd
import pytest
from alembic import command
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

import db.observation_writes
from db.bulk import CopyColumn, copy_binary
from db.forecasts import ForecastRun, write_forecast_run
from db.ingest import ingest_observations
from db.migrate import _config, current_revision, head_revision, upgrade
from db.observation_writes import lock_series
from db.observations import SeriesSpec, read_observations

SPEC = SeriesSpec(kind="sensor", freq="h")
POSTGRES_ONLY = pytest.mark.parametrize(
    "engine", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


def _raw(series_id: str, hours: range, value: float) -> pd.DataFrame:
    ts = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(list(hours), unit="h")
    return pd.DataFrame(
        {
            "series_id": series_id,
            "ts": [t.isoformat() for t in ts],
            "value": value,
            "row_number": range(2, len(hours) + 2),
        }
    )


def _copies(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Record (table, rows) of every COPY the observation writes make."""
    seen: list[tuple[str, int]] = []

    def spy(conn: Any, table: str, columns: Any, n: int) -> None:
        seen.append((table, n))
        copy_binary(conn, table, columns, n)

    monkeypatch.setattr(db.observation_writes, "copy_binary", spy)
    return seen


@POSTGRES_ONLY
def test_binary_copy_round_trips_nulls_nan_and_any_text(engine: Engine) -> None:
    ids = np.array(["a", "ünïcødé-séries", "", None, "a" * 150], dtype=object)
    ts = pd.Series(pd.to_datetime(["1970-01-01", "1999-12-31T23:59:59.999999", "2000-01-01",
                                   "2262-01-01", None], utc=True, format="ISO8601"))  # fmt: skip
    value = np.array([1.5, np.nan, -0.0, 1e300, np.nan])
    columns = [
        CopyColumn("k", "int4", np.arange(5)),
        CopyColumn("s", "text", ids),
        CopyColumn("t", "timestamptz", ts),
        CopyColumn("v", "float8", value),  # NaN stays NaN
        CopyColumn("w", "float8", value, nan_is_null=True),
        CopyColumn("b", "int8", 7),
    ]
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TEMP TABLE t (k integer, s text, t timestamptz, v double precision, "
                "w double precision, b bigint)"
            )
        )
        copy_binary(conn, "t", columns, 5)
        rows = conn.execute(text("SELECT k, s, t, v::text, w, b FROM t ORDER BY k")).all()
    assert [r[1] for r in rows] == ids.tolist()
    assert [None if r[2] is None else pd.Timestamp(r[2]) for r in rows[:4]] == ts[:4].tolist()
    assert rows[4][2] is None
    assert [r[3] for r in rows] == ["1.5", "NaN", "-0", "1e+300", "NaN"]
    assert [r[4] for r in rows] == [1.5, None, -0.0, 1e300, None]
    assert {r[5] for r in rows} == {7}
    with pytest.raises(ValueError, match="outside int4"), engine.connect() as conn:
        copy_binary(conn, "t", [CopyColumn("k", "int4", [2**31])], 1)


@POSTGRES_ONLY
def test_fresh_ranges_are_copied_directly_and_overlaps_are_merged(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    copies = _copies(monkeypatch)
    first = ingest_observations(engine, _raw("s1", range(0, 10), 1.0), "a", "sha-a", SPEC)
    assert (first.inserted, first.updated) == (10, 0)
    assert copies == [("observations", 10)]  # a first load: no stage
    copies.clear()
    # hours 5..9 are stored (5 updates), 10..14 are after the last stored time (direct)
    second = ingest_observations(engine, _raw("s1", range(5, 15), 2.0), "b", "sha-b")
    assert (second.accepted, second.inserted, second.updated) == (10, 5, 5)
    assert copies == [("observations", 5), ("stage_observations", 5)]
    copies.clear()
    before = ingest_observations(engine, _raw("s1", range(-3, 0), 3.0), "c", "sha-c")
    assert (before.inserted, copies) == (3, [("observations", 3)])  # before the first: direct
    stored = read_observations(engine, ["s1"])
    assert len(stored) == 18 and stored["value"].tolist() == [3.0] * 3 + [1.0] * 5 + [2.0] * 10


@POSTGRES_ONLY
def test_a_writer_holding_the_series_lock_is_waited_for_and_its_rows_merged(
    engine: Engine,
) -> None:
    ingest_observations(engine, _raw("s1", range(0, 10), 1.0), "a", "sha-a", SPEC)
    results: list[Any] = []
    with engine.connect() as other:
        other.begin()
        lock_series(other, ["s1"])  # as a concurrent chunk write of s1 does
        other.execute(
            text("INSERT INTO observations (series_id, ts, value) VALUES ('s1', :t, 99.0)"),
            {"t": dt.datetime(2024, 1, 1, 15, tzinfo=dt.UTC)},
        )
        load = threading.Thread(
            target=lambda: results.append(
                ingest_observations(engine, _raw("s1", range(10, 20), 2.0), "b", "sha-b")
            )
        )
        load.start()
        load.join(timeout=1.5)
        assert load.is_alive(), "the second writer did not wait for the series lock"
        other.commit()  # hour 15 now exists: the waiting load must merge it, not COPY over it
    load.join(timeout=60)
    assert len(results) == 1, "the waiting load failed"
    assert (results[0].inserted, results[0].updated) == (9, 1)
    stored = read_observations(engine, ["s1"])
    assert len(stored) == 20 and stored["value"].tolist() == [1.0] * 10 + [2.0] * 10


def _run(tag: str) -> ForecastRun:
    return ForecastRun("m", "1", "r", 1, dt.datetime(2024, 1, 1, tzinfo=dt.UTC), tag)


def _forecast(series_id: str) -> pd.DataFrame:
    return pd.DataFrame(
        {"series_id": [series_id], "ts": [pd.Timestamp("2024-01-02", tz="UTC")], "step": [1],
         "yhat": [1.0], "yhat_lower": [np.nan], "yhat_upper": [np.nan]}
    )  # fmt: skip


def test_references_refuse_what_foreign_keys_refused(engine: Engine) -> None:
    ingest_observations(engine, _raw("s1", range(0, 3), 1.0), "a", "sha-a", SPEC)
    run_id = write_forecast_run(engine, _run("x"), _forecast("s1")).run_id
    refused = [
        "INSERT INTO observations (series_id, ts, value) VALUES ('nope', '2024-02-01', 1.0)",
        "UPDATE observations SET series_id = 'nope'",
        "DELETE FROM series WHERE series_id = 's1'",
        "UPDATE series SET series_id = 's2' WHERE series_id = 's1'",
    ]
    for sql in refused:
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(text(sql))
    with pytest.raises(IntegrityError):
        write_forecast_run(engine, _run("y"), _forecast("nope"))
    with engine.begin() as conn:
        conn.execute(text("UPDATE series SET kind = 'price'"))  # key unchanged: allowed
        conn.execute(text("DELETE FROM forecast_runs WHERE run_id = :r"), {"r": run_id})
        assert conn.execute(text("SELECT COUNT(*) FROM forecasts")).scalar_one() == 0  # cascade
        assert conn.execute(text("SELECT COUNT(*) FROM observations")).scalar_one() == 3


def _foreign_keys(engine: Engine) -> set[str]:
    if engine.dialect.name != "postgresql":
        return set()
    with engine.connect() as conn:
        names = conn.execute(
            text(
                "SELECT conname FROM pg_constraint WHERE contype = 'f' AND conrelid IN "
                "(to_regclass('observations'), to_regclass('forecasts'))"
            )
        ).scalars()
        return set(names)


def test_0007_downgrades_to_foreign_keys_and_upgrades_again(engine: Engine) -> None:
    ingest_observations(engine, _raw("s1", range(0, 3), 1.0), "a", "sha-a", SPEC)
    write_forecast_run(engine, _run("x"), _forecast("s1"))
    assert _foreign_keys(engine) == set()
    config = _config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0006")
    assert current_revision(engine) == "0006"
    if engine.dialect.name == "postgresql":
        assert _foreign_keys(engine) == {
            "observations_series_id_fkey",
            "observations_batch_id_fkey",
            "forecasts_series_id_fkey",
            "forecasts_run_id_fkey",
        }
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text("DELETE FROM series"))
    assert upgrade(engine) == head_revision()
    assert _foreign_keys(engine) == set()
    assert len(read_observations(engine, ["s1"])) == 3
