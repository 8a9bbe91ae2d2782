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

import pytest
from sqlalchemy import Engine, text

from db.watermarks import read_watermark
from flows.sources.config import FilesSource, HttpSource
from flows.sources.runner import run_source
from tests.support import covariate_sources as cs
from tests.support.covariate_sources import T0

LABEL = "(covariates: known_future, series scope, name temperature)"


# --- files -------------------------------------------------------------------------------


def _write(path: Path, body: str, mtime: float) -> None:
    path.write_text(body)
    os.utime(path, (mtime, mtime))


def test_files_source_loads_each_new_covariate_file_once_with_rejects(
    engine: Engine, tmp_path: Path
) -> None:
    cs.declare(engine, "s1", "s2")
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
    assert cs.counts(results) == [(4, 2, 2, 2, False)]
    assert results[0]["source"] == f"{(drop / 'a.csv').resolve()} {LABEL}"
    reasons = cs.reasons(engine)
    assert len(reasons) == 2
    assert "'n/a' is not a finite number" in reasons[0]
    assert "unknown series 'ghost'" in reasons[1]
    assert results[0]["first_rejects"][0].startswith(f"{(drop / 'a.csv').resolve()}:3: value 'n/a'")
    first = [("temperature", "series", "s1", "01-01T00", 3.5)]
    first.append(("temperature", "series", "s2", "01-01T00", 4.0))
    assert cs.stored(engine) == first
    with engine.connect() as conn:  # the observations table is untouched
        assert conn.execute(text("SELECT COUNT(*) FROM observations")).scalar_one() == 2

    again, _ = run_source(engine, cfg)
    assert cs.counts(again) == [(4, 2, 2, 2, True)]  # the earlier batch's counts, nothing loaded
    assert cs.stored(engine) == first and len(cs.reasons(engine)) == 2

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
    assert ("temperature", "series", "s2", "01-01T00", 4.5) in cs.stored(engine)
    assert len(cs.stored(engine)) == 3
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
    assert cs.counts(results) == [(3, 2, 1, 2, False)]
    assert cs.reasons(engine) == ["empty covariate name"]
    assert cs.stored(engine) == [
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
    cs.declare(engine, "s1", "s2")
    weather.records["s1"] = [
        {"t": _hour(0), "temp": "oops"},
        {"t": _hour(1)},  # no temp field
        {"t": _hour(2), "temp": 3.5},
    ]
    weather.records["s2"] = [{"t": _hour(0), "temp": 4}]
    results, failures = run_source(engine, _http(weather))
    assert failures == []
    assert cs.counts(results) == [(3, 1, 2, 1, False), (1, 1, 0, 1, False)]
    assert results[0]["source"] == f"http:forecast-api/s1 {LABEL}"
    reasons = cs.reasons(engine)
    assert "'oops' is not a finite number" in reasons[0]
    assert "record has no field 'temp'" in reasons[1]
    assert read_watermark(engine, "forecast-api") == {
        "s1": (T0 + dt.timedelta(hours=2)).isoformat(),
        "s2": T0.isoformat(),
    }
    stored = cs.stored(engine)
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
    assert cs.stored(engine) == stored
    # The same answers once more are the same content: loaded before, a no-op.
    assert [r["already_loaded"] for r in run_source(engine, _http(weather))[0]] == [True, True]

    weather.records["s2"].append({"t": _hour(1), "temp": 5})
    more, _ = run_source(engine, _http(weather))
    assert [(r["received"], r["inserted"]) for r in more] == [(1, 0), (2, 1)]
    assert read_watermark(engine, "forecast-api")["s2"] == (T0 + dt.timedelta(hours=1)).isoformat()
    assert len(cs.stored(engine)) == 3


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
    assert cs.counts(results) == [(1, 1, 0, 1, False), (1, 1, 0, 1, False)]
    assert cs.stored(engine) == [
        ("humidity", "global", "", "01-01T00", 80.0),
        ("temperature", "global", "", "01-01T00", 3.5),
    ]
    with engine.connect() as conn:
        kinds = conn.execute(text("SELECT DISTINCT kind FROM covariates")).scalars().all()
    assert kinds == ["past_only"]


def test_a_forecast_api_asked_without_start_updates_revised_values(
    engine: Engine, weather: WeatherApi
) -> None:
    cs.declare(engine, "s1")
    weather.records["s1"] = [{"t": _hour(h), "temp": 3.0 + h} for h in range(3)]
    cfg = _http(weather, url=weather.url + "/temps/{symbol}", symbols=["s1"])
    assert cs.counts(run_source(engine, cfg)[0]) == [(3, 3, 0, 3, False)]
    weather.records["s1"][2]["temp"] = 9.0  # the next issue revises one hour
    weather.records["s1"].append({"t": _hour(3), "temp": 6.0})  # and reaches one further
    again = run_source(engine, cfg)[0]
    assert [(r["received"], r["inserted"], r["updated"]) for r in again] == [(4, 1, 1)]
    assert [v for *_, v in cs.stored(engine)] == [3.0, 4.0, 9.0, 6.0]
    assert run_source(engine, cfg)[0][0]["already_loaded"] is True  # the same issue again
