"""Configured sources that deliver covariates (a ``covariate:`` block): files, HTTP and SQL
each load through ingest_covariates with rejects that reconcile, a repeat is a no-op, and a
source resumes from its watermark, which commits with the rows it covers."""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy import Engine, text

import db.covariates
from db.ingest import ingest_observations
from db.observations import SeriesSpec
from db.watermarks import read_watermark
from flows.errors import SeqcastError
from flows.project import load_project
from flows.sources.base import Window
from flows.sources.config import FilesSource, HttpSource, SqlSource
from flows.sources.runner import run_source

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
LABEL = "(covariates: known_future, series scope, name temperature)"


def _declare(engine: Engine, *series_ids: str) -> None:
    raw = pd.DataFrame(
        {
            "series_id": list(series_ids),
            "ts": T0.isoformat(),
            "value": "1",
            "row_number": range(1, len(series_ids) + 1),
        }
    )
    ingest_observations(engine, raw, "seed", f"seed-{series_ids}", SeriesSpec("sensor", "h"))


def _stored(engine: Engine) -> list[tuple[str, str, str, str, float]]:
    """Every covariate row as (name, scope, scope key, ISO UTC hour, value)."""
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT name, scope, scope_key, ts, value FROM covariates")).all()
    out = [
        (n, s, k, pd.Timestamp(t).tz_localize(None).strftime("%m-%dT%H"), float(v))
        for n, s, k, t, v in rows
    ]
    return sorted(out)


def _reasons(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT reason FROM rejected_rows ORDER BY batch_id, row_number"))
        return [str(r) for (r,) in rows]


def _counts(results: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    assert all(r["accepted"] + r["rejected"] == r["received"] for r in results)
    return [
        (r["received"], r["accepted"], r["rejected"], r["inserted"], r["already_loaded"])
        for r in results
    ]


# --- files -------------------------------------------------------------------------------


def _write(path: Path, body: str, mtime: float) -> None:
    path.write_text(body)
    os.utime(path, (mtime, mtime))


def test_files_source_loads_each_new_covariate_file_once_with_rejects(
    engine: Engine, tmp_path: Path
) -> None:
    _declare(engine, "s1", "s2")
    drop = tmp_path / "weather"
    drop.mkdir()
    _write(
        drop / "a.csv",
        "series_id,ts,value\n"
        "s1,2024-01-01T00:00:00Z,3.5\n"
        "s1,2024-01-01T01:00:00Z,n/a\n"
        "ghost,2024-01-01T00:00:00Z,1\n"
        "s2,2024-01-01T00:00:00Z,4\n",
        1_700_000_000,
    )
    cfg = FilesSource.model_validate(
        {
            "name": "weather",
            "type": "files",
            "path": str(drop),
            "covariate": {"kind": "known_future", "name": "temperature"},
        }
    )
    results, failures = run_source(engine, cfg)
    assert failures == []
    assert _counts(results) == [(4, 2, 2, 2, False)]
    assert results[0]["source"] == f"{(drop / 'a.csv').resolve()} {LABEL}"
    reasons = _reasons(engine)
    assert len(reasons) == 2
    assert "'n/a' is not a finite number" in reasons[0]
    assert "unknown series 'ghost'" in reasons[1]
    assert results[0]["first_rejects"][0].startswith(f"{(drop / 'a.csv').resolve()}:3: value 'n/a'")
    first = [("temperature", "series", "s1", "01-01T00", 3.5)]
    first.append(("temperature", "series", "s2", "01-01T00", 4.0))
    assert _stored(engine) == first
    with engine.connect() as conn:  # the observations table is untouched
        assert conn.execute(text("SELECT COUNT(*) FROM observations")).scalar_one() == 2

    again, _ = run_source(engine, cfg)
    assert _counts(again) == [(4, 2, 2, 2, True)]  # the earlier batch's counts, nothing loaded
    assert _stored(engine) == first and len(_reasons(engine)) == 2

    # A new file changes one value and adds one; a file without a ts column fails alone.
    _write(
        drop / "b.csv",
        "series_id,ts,value\ns1,2024-01-01T01:00:00Z,3\ns2,2024-01-01T00:00:00Z,4.5\n",
        1_700_000_100,
    )
    _write(drop / "c.csv", "series_id,when,value\ns1,2024-01-01T02:00:00Z,1\n", 1_700_000_200)
    more, failures = run_source(engine, cfg)
    assert [(r["inserted"], r["updated"], r["already_loaded"]) for r in more] == [
        (2, 0, True),
        (1, 1, False),
    ]
    assert len(failures) == 1 and "c.csv" in failures[0] and "ts" in failures[0]
    assert ("temperature", "series", "s2", "01-01T00", 4.5) in _stored(engine)
    assert len(_stored(engine)) == 3
    assert read_watermark(engine, "weather")["last_file"] == str(drop / "b.csv")


def test_files_source_with_names_per_row_and_global_scope(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "calendar.csv"
    path.write_text(
        "name,ts,value\nholiday,2024-01-01T00:00:00Z,1\nworkday,2024-01-01T00:00:00Z,0\n"
        ",2024-01-01T00:00:00Z,1\n"
    )
    cfg = FilesSource.model_validate(
        {
            "name": "calendar",
            "type": "files",
            "path": str(tmp_path / "*.csv"),
            "covariate": {"kind": "known_future", "scope": "global"},
        }
    )
    results, _ = run_source(engine, cfg)
    assert _counts(results) == [(3, 2, 1, 2, False)]
    assert _reasons(engine) == ["empty covariate name"]
    assert _stored(engine) == [
        ("holiday", "global", "", "01-01T00", 1.0),
        ("workday", "global", "", "01-01T00", 0.0),
    ]


# --- HTTP --------------------------------------------------------------------------------


class WeatherApi:
    """A loopback JSON API: ``/temps/<station>?start=...`` answers the station's records at
    or after ``start`` (inclusive, as many APIs are); logs each request's start."""

    def __init__(self) -> None:
        self.records: dict[str, list[dict[str, Any]]] = {}
        self.starts: list[tuple[str, str]] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlparse(self.path)
                station = url.path.rsplit("/", 1)[-1]
                start = parse_qs(url.query).get("start", ["1970-01-01T00:00:00Z"])[0]
                api.starts.append((station, start))
                since = dt.datetime.fromisoformat(start.replace("Z", "+00:00"))
                body = [
                    r
                    for r in api.records.get(station, [])
                    if dt.datetime.fromisoformat(r["t"].replace("Z", "+00:00")) >= since
                ]
                data = json.dumps({"data": body}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def weather() -> Iterator[WeatherApi]:
    api = WeatherApi()
    thread = threading.Thread(target=api.server.serve_forever, daemon=True)
    thread.start()
    yield api
    api.server.shutdown()
    api.server.server_close()
    thread.join(5)


def _hour(h: int) -> str:
    return (T0 + dt.timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _http(api: WeatherApi, **kw: Any) -> HttpSource:
    base: dict[str, Any] = {
        "name": "forecast-api",
        "type": "http",
        "url": api.url + "/temps/{symbol}?start={start}",
        "symbols": ["s1", "s2"],
        "records": "data",
        "value_field": "temp",
        "start": "2024-01-01T00:00:00Z",
        "rate_per_second": 1000,
        "retries": 0,
        "covariate": {"kind": "known_future", "name": "temperature"},
    }
    return HttpSource.model_validate(base | kw)


def test_http_source_loads_covariates_and_resumes_from_its_watermark(
    engine: Engine, weather: WeatherApi
) -> None:
    _declare(engine, "s1", "s2")
    weather.records["s1"] = [
        {"t": _hour(0), "temp": "oops"},
        {"t": _hour(1)},  # no temp field
        {"t": _hour(2), "temp": 3.5},
    ]
    weather.records["s2"] = [{"t": _hour(0), "temp": 4}]
    results, failures = run_source(engine, _http(weather))
    assert failures == []
    assert _counts(results) == [(3, 1, 2, 1, False), (1, 1, 0, 1, False)]
    assert results[0]["source"] == f"http:forecast-api/s1 {LABEL}"
    reasons = _reasons(engine)
    assert "'oops' is not a finite number" in reasons[0]
    assert "record has no field 'temp'" in reasons[1]
    assert read_watermark(engine, "forecast-api") == {
        "s1": (T0 + dt.timedelta(hours=2)).isoformat(),
        "s2": T0.isoformat(),
    }
    stored = _stored(engine)
    assert stored == [
        ("temperature", "series", "s1", "01-01T02", 3.5),
        ("temperature", "series", "s2", "01-01T00", 4.0),
    ]

    # The next run asks from the watermark; the API repeats the boundary records.
    again, _ = run_source(engine, _http(weather))
    assert weather.starts[-2:] == [("s1", _hour(2)), ("s2", _hour(0))]
    # s1: the boundary record again, new content that changes nothing; s2: the same answer
    # as before, content loaded already (its earlier counts).
    assert [(r["received"], r["inserted"], r["updated"], r["already_loaded"]) for r in again] == [
        (1, 0, 0, False),
        (1, 1, 0, True),
    ]
    assert _stored(engine) == stored
    # The same answers once more are the same content: loaded before, a no-op.
    assert [r["already_loaded"] for r in run_source(engine, _http(weather))[0]] == [True, True]

    weather.records["s2"].append({"t": _hour(1), "temp": 5})
    more, _ = run_source(engine, _http(weather))
    assert [(r["received"], r["inserted"]) for r in more] == [(1, 0), (2, 1)]
    assert read_watermark(engine, "forecast-api")["s2"] == (T0 + dt.timedelta(hours=1)).isoformat()
    assert len(_stored(engine)) == 3


def test_http_global_covariates_take_their_names_from_the_symbols(
    engine: Engine, weather: WeatherApi
) -> None:
    weather.records["temperature"] = [{"t": _hour(0), "temp": 3.5}]
    weather.records["humidity"] = [{"t": _hour(0), "temp": 80}]
    cfg = _http(
        weather,
        symbols=["temperature", "humidity"],
        covariate={"kind": "past_only", "scope": "global"},
    )
    results, _ = run_source(engine, cfg)
    assert _counts(results) == [(1, 1, 0, 1, False), (1, 1, 0, 1, False)]
    assert _stored(engine) == [
        ("humidity", "global", "", "01-01T00", 80.0),
        ("temperature", "global", "", "01-01T00", 3.5),
    ]
    with engine.connect() as conn:
        kinds = conn.execute(text("SELECT DISTINCT kind FROM covariates")).scalars().all()
    assert kinds == ["past_only"]


def test_a_forecast_api_asked_without_start_updates_revised_values(
    engine: Engine, weather: WeatherApi
) -> None:
    _declare(engine, "s1")
    weather.records["s1"] = [{"t": _hour(h), "temp": 3.0 + h} for h in range(3)]
    cfg = _http(weather, url=weather.url + "/temps/{symbol}", symbols=["s1"])
    assert _counts(run_source(engine, cfg)[0]) == [(3, 3, 0, 3, False)]
    weather.records["s1"][2]["temp"] = 9.0  # the next issue revises one hour
    weather.records["s1"].append({"t": _hour(3), "temp": 6.0})  # and reaches one further
    again = run_source(engine, cfg)[0]
    assert [(r["received"], r["inserted"], r["updated"]) for r in again] == [(4, 1, 1)]
    assert [v for *_, v in _stored(engine)] == [3.0, 4.0, 9.0, 6.0]
    assert run_source(engine, cfg)[0][0]["already_loaded"] is True  # the same issue again


# --- SQL ---------------------------------------------------------------------------------


def _upstream(tmp_path: Path, rows: list[tuple[int, str, dt.datetime, str]]) -> str:
    url = f"sqlite:///{tmp_path / 'weather.db'}"
    eng = sa.create_engine(url)
    with eng.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE IF NOT EXISTS readings "
                "(id INTEGER PRIMARY KEY, station TEXT, taken_at TEXT, temp TEXT)"
            )
        )
        conn.execute(
            text("INSERT INTO readings VALUES (:i, :s, :t, :v)"),
            [{"i": i, "s": s, "t": t.isoformat(), "v": v} for i, s, t, v in rows],
        )
    eng.dispose()
    return url


def _sql(url: str) -> SqlSource:
    return SqlSource.model_validate(
        {
            "name": "station-db",
            "type": "sql",
            "url": url,
            "table": "readings",
            "ts_column": "taken_at",
            "value_column": "temp",
            "series_column": "station",
            "watermark_column": "id",
            "chunk_rows": 3,
            "covariate": {"kind": "known_future", "name": "temperature"},
        }
    )


def _readings(ids: range, station: str = "s1") -> list[tuple[int, str, dt.datetime, str]]:
    return [(i, station, T0 + dt.timedelta(hours=i), f"{i / 2}") for i in ids]


def test_sql_source_loads_covariates_by_watermark_in_the_rows_transaction(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _declare(engine, "s1")
    url = _upstream(tmp_path, [*_readings(range(1, 5)), (5, "s1", T0, "n/a"), (6, "pump", T0, "1")])
    record = db.covariates.record_rows
    calls = {"n": 0}

    def record_then_crash(*args: Any, **kw: Any) -> None:
        record(*args, **kw)  # rows, counts and the watermark are written, not committed
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("power cut")

    monkeypatch.setattr(db.covariates, "record_rows", record_then_crash)
    with pytest.raises(RuntimeError, match="power cut"):
        run_source(engine, _sql(url))
    assert len(_stored(engine)) == 3  # the first chunk only
    assert read_watermark(engine, "station-db") == {"type": "int", "value": 3}

    monkeypatch.setattr(db.covariates, "record_rows", record)
    results, failures = run_source(engine, _sql(url))
    assert failures == []
    assert _counts(results) == [(3, 1, 2, 1, False)]  # exactly the rest: ids 4..6
    reasons = _reasons(engine)
    assert "'n/a' is not a finite number" in reasons[0]
    assert "unknown series 'pump'" in reasons[1]
    assert read_watermark(engine, "station-db") == {"type": "int", "value": 6}
    assert len(_stored(engine)) == 4

    assert run_source(engine, _sql(url)) == ([], [])  # nothing new upstream
    _upstream(tmp_path, _readings(range(7, 9)))
    more, _ = run_source(engine, _sql(url))
    assert _counts(more) == [(2, 2, 0, 2, False)]
    assert read_watermark(engine, "station-db")["value"] == 8
    assert [k for _, _, k, _, _ in _stored(engine)] == ["s1"] * 6
    with engine.connect() as conn:
        batches = conn.execute(text("SELECT status FROM ingest_batches")).scalars().all()
    assert set(batches) == {"complete"}


def test_sql_covariate_backfill_replays_a_range_without_moving_the_watermark(
    engine: Engine, tmp_path: Path
) -> None:
    _declare(engine, "s1")
    url = _upstream(tmp_path, _readings(range(1, 8)))
    run_source(engine, _sql(url))
    with engine.begin() as conn:  # someone deleted part of the covariate's history
        conn.execute(text("DELETE FROM covariates WHERE value < 2"))
    assert len(_stored(engine)) == 4
    window = Window(T0 + dt.timedelta(hours=2), T0 + dt.timedelta(hours=5))  # ids 2..4
    results, _ = run_source(engine, _sql(url), window)
    assert [(r["received"], r["inserted"], r["updated"]) for r in results] == [(3, 2, 0)]
    assert len(_stored(engine)) == 6  # id 1 lies outside the window
    assert read_watermark(engine, "station-db") == {"type": "int", "value": 7}


# --- the project file --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            "{name: w, type: files, path: x, covariate: {kind: future, name: t}}",
            r"sources\[0\] \(name: w\)\.files\.covariate\.kind: Input should be "
            r"'known_future' or 'past_only'",
        ),
        (
            "{name: w, type: files, path: x, covariate: {kind: past_only, scope: site}}",
            r"sources\[0\] \(name: w\)\.files\.covariate\.scope: Input should be 'series'",
        ),
        (
            "{name: w, type: files, path: x, covariate: {kind: past_only, nme: t}}",
            r"sources\[0\] \(name: w\)\.files\.covariate\.nme: unknown key",
        ),
        (
            "{name: w, type: files, path: x, covariate: {name: t}}",
            r"sources\[0\] \(name: w\)\.files\.covariate\.kind: required; add it",
        ),
        (
            "{name: w, type: files, path: x, declare: {kind: sensor, freq: h}, "
            "covariate: {kind: past_only}}",
            r"sources\[0\] \(name: w\)\.files: covariate and declare: .* remove declare",
        ),
        (
            "{name: w, type: http, url: u, symbols: [s1], covariate: {kind: past_only}}",
            r"sources\[0\] \(name: w\)\.http: covariate\.name: required for a series-scoped "
            r"covariate of this source .* or use scope: global",
        ),
    ],
)
def test_bad_covariate_blocks_name_the_source_and_the_key(
    tmp_path: Path, source: str, message: str
) -> None:
    path = tmp_path / "seqcast.yaml"
    path.write_text(f"sources: [{source}]\n")
    with pytest.raises(SeqcastError, match=message) as info:
        load_project(path)
    assert str(path) in str(info.value)


def test_the_starter_files_sources_are_valid_once_uncommented(tmp_path: Path) -> None:
    from flows.cli.project import starter_file

    catalog = pd.DataFrame({"kind": ["sensor"], "freq": ["h"], "n_obs": [500]})
    lines = starter_file(catalog, None).splitlines()
    start = lines.index(next(x for x in lines if x.startswith("# sources:")))
    end = lines.index("sources: []")
    path = tmp_path / "seqcast.yaml"
    path.write_text("\n".join(x.removeprefix("# ") for x in lines[start:end]) + "\n")
    sources = load_project(path).sources
    assert [(s.name, s.covariate is not None) for s in sources] == [
        ("incoming-files", False),
        ("weather", True),
    ]
