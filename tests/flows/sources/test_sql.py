"""SQL source: new rows by a watermark column, chunked, crash-safe, replayable by time range."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine, text

import db.ingest
from db.watermarks import list_watermarks, read_watermark
from flows.errors import SeqcastError
from flows.sources.base import Window
from flows.sources.config import SqlSource
from flows.sources.runner import run_source

T0 = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)


def _counts(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        n = conn.execute(text("SELECT COUNT(*) FROM observations")).scalar_one()
        keys = conn.execute(
            text("SELECT COUNT(*) FROM (SELECT DISTINCT series_id, ts FROM observations) k")
        ).scalar_one()
    return int(n), int(keys)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def upstream(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str | None]]:
    """Another database with a readings table: (URL, schema). SQLite file or a PG schema."""
    if request.param == "sqlite":
        url, schema = f"sqlite:///{tmp_path / 'upstream.db'}", None
        ts_type = "TEXT"
    else:
        request.getfixturevalue("postgres_available")
        url = (
            os.environ.get("SEQCAST_TEST_POSTGRES_URL")
            or "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        )
        schema, ts_type = f"up_{uuid.uuid4().hex[:10]}", "timestamptz"
    eng = sa.create_engine(url)
    table = f"{schema}.readings" if schema else "readings"
    with eng.begin() as conn:
        if schema:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        conn.execute(
            text(
                f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, sensor TEXT, "
                f"taken_at {ts_type}, reading TEXT)"
            )
        )
    eng.dispose()
    yield url, schema
    if schema:
        eng = sa.create_engine(url)
        with eng.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        eng.dispose()


def _insert(
    upstream: tuple[str, str | None], rows: list[tuple[int, str, dt.datetime, str]]
) -> None:
    url, schema = upstream
    eng = sa.create_engine(url)
    table = f"{schema}.readings" if schema else "readings"
    with eng.begin() as conn:
        conn.execute(
            text(f"INSERT INTO {table} (id, sensor, taken_at, reading) VALUES (:i, :s, :t, :v)"),
            [{"i": i, "s": s, "t": t if schema else t.isoformat(), "v": v} for i, s, t, v in rows],
        )
    eng.dispose()


def _cfg(upstream: tuple[str, str | None], **kw: Any) -> SqlSource:
    url, schema = upstream
    base: dict[str, Any] = {
        "type": "sql",
        "name": "plant-db",
        "url": url,
        "table": "readings",
        "db_schema": schema,
        "ts_column": "taken_at",
        "value_column": "reading",
        "series_column": "sensor",
        "series_id": "plant-{series}",
        "watermark_column": "id",
        "chunk_rows": 10,
        "declare": {"kind": "sensor", "freq": "min", "match": r"plant-s\d"},
    }
    return SqlSource.model_validate(base | kw)


def _rows(ids: range, sensor: str = "s1") -> list[tuple[int, str, dt.datetime, str]]:
    return [(i, sensor, T0 + dt.timedelta(minutes=i), f"{i * 0.5}") for i in ids]


def test_new_rows_load_in_chunks_and_a_rerun_loads_nothing(
    engine: Engine, upstream: tuple[str, str | None]
) -> None:
    _insert(upstream, _rows(range(1, 26)))
    results, failures = run_source(engine, _cfg(upstream))
    assert failures == []
    assert [r["received"] for r in results] == [10, 10, 5]
    assert all(r["accepted"] + r["rejected"] == r["received"] for r in results)
    assert sum(r["inserted"] for r in results) == 25
    assert read_watermark(engine, "plant-db") == {"type": "int", "value": 25}

    again, _ = run_source(engine, _cfg(upstream))
    assert again == []  # nothing new upstream: no batch, no row
    assert _counts(engine) == (25, 25)

    # New rows, one with a bad value and one for a series the config does not declare.
    _insert(upstream, [*_rows(range(26, 29)), (29, "s1", T0, "n/a"), (30, "pump", T0, "1")])
    more, _ = run_source(engine, _cfg(upstream))
    assert [(r["received"], r["accepted"], r["rejected"]) for r in more] == [(5, 3, 2)]
    with engine.connect() as conn:
        reasons = conn.execute(text("SELECT reason FROM rejected_rows ORDER BY row_number")).all()
    assert "'n/a' is not a finite number" in reasons[0][0]
    assert "unknown series 'plant-pump'" in reasons[1][0]
    assert read_watermark(engine, "plant-db")["value"] == 30


def test_rows_sharing_a_watermark_value_are_never_split(
    engine: Engine, upstream: tuple[str, str | None]
) -> None:
    # The watermark column is the timestamp; seven rows share only three distinct values.
    stamps = [T0] * 4 + [T0 + dt.timedelta(minutes=1)] * 2 + [T0 + dt.timedelta(minutes=2)]
    _insert(upstream, [(i, f"s{i}", t, "1") for i, t in enumerate(stamps, start=1)])
    cfg = _cfg(upstream, watermark_column=None, chunk_rows=3)
    results, _ = run_source(engine, cfg)
    assert [r["received"] for r in results] == [4, 3]
    assert _counts(engine) == (7, 7)
    # A late row with an already-passed timestamp is not picked up; a newer one is.
    _insert(upstream, [(8, "s8", T0, "1"), (9, "s9", T0 + dt.timedelta(minutes=3), "1")])
    late, _ = run_source(engine, cfg)
    assert [r["received"] for r in late] == [1]


def test_a_crash_before_commit_leaves_rows_and_watermark_unchanged(
    engine: Engine, upstream: tuple[str, str | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    _insert(upstream, _rows(range(1, 26)))
    write = db.ingest._write_accepted
    calls = {"n": 0}

    def write_then_crash(conn: sa.Connection, *args: Any) -> Any:
        out = write(conn, *args)  # the rows are written, not yet committed
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("power cut")
        return out

    monkeypatch.setattr(db.ingest, "_write_accepted", write_then_crash)
    with pytest.raises(RuntimeError, match="power cut"):
        run_source(engine, _cfg(upstream))
    assert _counts(engine) == (10, 10)  # the first chunk only
    assert read_watermark(engine, "plant-db")["value"] == 10

    monkeypatch.setattr(db.ingest, "_write_accepted", write)
    results, _ = run_source(engine, _cfg(upstream))
    assert [r["inserted"] for r in results] == [10, 5]  # exactly the missing rows
    assert _counts(engine) == (25, 25)
    assert read_watermark(engine, "plant-db")["value"] == 25
    with engine.connect() as conn:
        batches = conn.execute(
            text("SELECT received, accepted, rejected, status FROM ingest_batches")
        ).all()
    assert all(b.accepted + b.rejected == b.received and b.status == "complete" for b in batches)
    assert sum(b.received for b in batches) == 25


def test_backfill_replays_a_time_range_without_moving_the_watermark(
    engine: Engine, upstream: tuple[str, str | None]
) -> None:
    _insert(upstream, _rows(range(1, 26)))
    run_source(engine, _cfg(upstream))
    mark = list_watermarks(engine)[0]["watermark"]
    with engine.begin() as conn:  # someone deleted part of the history
        conn.execute(text("DELETE FROM observations WHERE value < 5"))
    assert _counts(engine)[0] == 16
    window = Window(T0, T0 + dt.timedelta(minutes=12))  # ids 1..11 (minute 0 has no row)
    results, _ = run_source(engine, _cfg(upstream), window)
    assert sum(r["received"] for r in results) == 11
    assert sum(r["inserted"] for r in results) == 9  # the deleted ones, values 0.5..4.5
    assert _counts(engine) == (25, 25)
    assert list_watermarks(engine)[0]["watermark"] == mark
    again, _ = run_source(engine, _cfg(upstream), window)
    assert sum(r["inserted"] + r["updated"] for r in again) == 0


def test_the_url_can_come_from_the_environment_only(
    engine: Engine, upstream: tuple[str, str | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    _insert(upstream, _rows(range(1, 4)))
    cfg = _cfg(upstream, url=None, url_env="SEQCAST_TEST_HISTORIAN_URL")
    with pytest.raises(SeqcastError, match="SEQCAST_TEST_HISTORIAN_URL is not set"):
        run_source(engine, cfg)
    monkeypatch.setenv("SEQCAST_TEST_HISTORIAN_URL", upstream[0])
    results, _ = run_source(engine, cfg)
    assert [r["inserted"] for r in results] == [3]
