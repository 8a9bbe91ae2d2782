"""HTTP price source against a real local HTTP server: auth, retries, timeouts, bad JSON.

Waits are timed by a fake clock (tests/flows/sources/fake_clock.py), never by the wall:
on a busy machine, when requests arrive says more about the load than about the source.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from sqlalchemy import Engine, text

from db.watermarks import read_watermark
from flows.errors import SeqcastError
from flows.sources.base import SourceFailure, SourceLoad, Window
from flows.sources.config import HttpSource
from flows.sources.http import http_loads
from flows.sources.runner import run_source
from tests.flows.sources.fake_clock import FakeClock

# status, headers, body, delay before answering (None: no answer until the test ends)
Reply = tuple[int, dict[str, str], bytes, float | None]


class PriceApi:
    """A scripted API: per symbol a queue of replies (the last one repeats); logs requests.

    Each request is logged with ``clock()`` at its arrival: set it to a fake clock's
    ``monotonic`` to see when, by that clock, the source sent it.
    """

    def __init__(self) -> None:
        self.script: dict[str, list[Reply]] = {}
        self.requests: list[tuple[float, str, dict[str, list[str]], dict[str, str]]] = []
        self.clock: Callable[[], float] = time.monotonic
        self.released = threading.Event()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlparse(self.path)
                symbol = url.path.rsplit("/", 1)[-1]
                api.requests.append((api.clock(), symbol, parse_qs(url.query), dict(self.headers)))
                queue = api.script.get(symbol) or [(404, {}, b"no such symbol", 0.0)]
                status, headers, body, delay = queue.pop(0) if len(queue) > 1 else queue[0]
                if delay is None:
                    api.released.wait(60)
                else:
                    time.sleep(delay)
                try:
                    self.send_response(status)
                    for k, v in {"Content-Type": "application/json", **headers}.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and left

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def ok(self, symbol: str, prices: list[tuple[str, Any]]) -> Reply:
        body = {"symbol": symbol, "data": {"prices": [{"t": t, "close": p} for t, p in prices]}}
        return (200, {}, json.dumps(body).encode(), 0.0)


@pytest.fixture
def api() -> Iterator[PriceApi]:
    server = PriceApi()
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.released.set()
    server.server.shutdown()
    server.server.server_close()
    thread.join(5)


def _cfg(api: PriceApi, symbols: list[str], **kw: Any) -> HttpSource:
    base: dict[str, Any] = {
        "type": "http",
        "name": "prices",
        "url": api.url + "/v1/prices/{symbol}?from={start}&to={end}",
        "symbols": symbols,
        "series_id": "px-{symbol}",
        "records": "data.prices",
        "timestamp_field": "t",
        "value_field": "close",
        "declare": {"kind": "price", "freq": "D", "unit": "USD"},
        "backoff_s": 0.05,
        "retries": 2,
        "rate_per_second": 50,
        "timeout_s": 2,
    }
    return HttpSource.model_validate(base | kw)


DAYS = [f"2024-01-0{d}T00:00:00Z" for d in range(1, 6)]


def test_symbols_load_with_the_auth_header_and_reruns_are_idempotent(
    engine: Engine, api: PriceApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PRICE_TOKEN", "s3cret")
    api.script["AAPL"] = [
        api.ok("AAPL", list(zip(DAYS, [185.6, 184.2, 181.9, 181.2, 181.9], strict=True)))
    ]
    api.script["MSFT"] = [api.ok("MSFT", list(zip(DAYS[:3], [370.9, 370.6, 367.9], strict=True)))]
    cfg = _cfg(
        api,
        ["AAPL", "MSFT"],
        auth_header="Authorization",
        auth_env="PRICE_TOKEN",
        auth_prefix="Bearer ",
    )
    results, failures = run_source(engine, cfg)
    assert failures == []
    assert [(r["source"], r["received"], r["inserted"]) for r in results] == [
        ("http:prices/AAPL", 5, 5),
        ("http:prices/MSFT", 3, 3),
    ]
    assert {r[3]["Authorization"] for r in api.requests} == {"Bearer s3cret"}
    assert api.requests[0][2]["from"] == ["1970-01-01T00:00:00Z"]
    assert read_watermark(engine, "prices") == {
        "AAPL": "2024-01-05T00:00:00+00:00",
        "MSFT": "2024-01-03T00:00:00+00:00",
    }
    again, _ = run_source(engine, cfg)
    assert [r["already_loaded"] for r in again] == [True, True]
    assert api.requests[-2][2]["from"] == ["2024-01-05T00:00:00Z"]  # incremental from the mark
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM observations")).scalar_one() == 8


def _load(cfg: HttpSource, clock: FakeClock) -> tuple[list[str], list[str]]:
    """The source on its own, timed by ``clock``: (labels loaded, failure messages)."""
    items = list(http_loads(cfg, {}, None, clock))
    loaded = [i.source for i in items if isinstance(i, SourceLoad)]
    return loaded, [i.message for i in items if isinstance(i, SourceFailure)]


def _arrivals(api: PriceApi, symbol: str | None = None) -> list[float]:
    """Gaps between the requests (for one symbol), by the clock the API logs with."""
    times = [t for t, s, *_ in api.requests if symbol in (None, s)]
    return [b - a for a, b in itertools.pairwise(times)]


def test_429_and_500_are_retried_with_backoff_and_retry_after(api: PriceApi) -> None:
    api.script["AAPL"] = [
        (429, {"Retry-After": "1"}, b"slow down", 0.0),
        api.ok("AAPL", [(DAYS[0], 1)]),
    ]
    api.script["MSFT"] = [
        (500, {}, b"oops", 0.0),
        (503, {}, b"", 0.0),
        api.ok("MSFT", [(DAYS[0], 2)]),
    ]
    api.script["IBM"] = [(500, {}, b"down", 0.0)]
    clock = FakeClock()
    api.clock = clock.monotonic
    loaded, failures = _load(_cfg(api, ["AAPL", "MSFT", "IBM"]), clock)
    assert loaded == ["http:prices/AAPL", "http:prices/MSFT"]
    assert len(failures) == 1 and "HTTP 500 on all 3 attempt(s)" in failures[0]
    assert _arrivals(api, "AAPL") == pytest.approx([1.0])  # Retry-After was honoured
    assert _arrivals(api, "MSFT") == pytest.approx([0.05, 0.1])  # exponential backoff
    assert _arrivals(api, "IBM") == pytest.approx([0.05, 0.1])
    assert clock.sleeps == pytest.approx(
        [1.0] + [0.02, 0.05, 0.1] * 2  # a backoff counts toward the 50/s spacing, a new symbol
    )


def test_slow_responses_time_out_and_malformed_json_fails_only_its_symbol(
    engine: Engine, api: PriceApi
) -> None:
    api.script["SLOW"] = [(200, {}, b"[]", None)]
    api.script["BAD"] = [(200, {}, b'{"data": {"prices": [{"t": 1', 0.0)]
    api.script["HOLE"] = [
        (
            200,
            {},
            json.dumps({"data": {"prices": [{"t": DAYS[0], "close": 1}, {"t": DAYS[1]}]}}).encode(),
            0.0,
        )
    ]
    api.script["GOOD"] = [api.ok("GOOD", [(DAYS[0], 10.5)])]
    # The timeout is real; one second leaves a loaded machine time to answer the others.
    cfg = _cfg(api, ["SLOW", "BAD", "HOLE", "GOOD"], timeout_s=1, retries=1)
    results, failures = run_source(engine, cfg)
    assert [(r["source"], r["accepted"], r["rejected"]) for r in results] == [
        ("http:prices/HOLE", 1, 1),
        ("http:prices/GOOD", 1, 0),
    ]
    assert "prices/SLOW" in failures[0] and "timed out after 1 s on all 2 attempt(s)" in failures[0]
    assert "prices/BAD" in failures[1] and "not valid JSON" in failures[1]
    with engine.connect() as conn:
        reason = conn.execute(text("SELECT reason FROM rejected_rows")).scalar_one()
    assert reason == "record has no field 'close' (path 'close')"


def test_requests_are_rate_limited(api: PriceApi) -> None:
    symbols = [f"S{i}" for i in range(6)]
    for s in symbols:
        api.script[s] = [api.ok(s, [(DAYS[0], 1)])]
    clock = FakeClock()
    api.clock = clock.monotonic
    loaded, failures = _load(_cfg(api, symbols, rate_per_second=5), clock)
    assert (len(loaded), failures) == (6, [])
    assert clock.sleeps == pytest.approx([0.2] * 5)  # 5 per second
    assert _arrivals(api) == pytest.approx([0.2] * 5)  # ...and each wait came before a request


def test_backfill_fills_the_window_into_the_url_and_keeps_the_watermark(
    engine: Engine, api: PriceApi
) -> None:
    import datetime as dt

    api.script["AAPL"] = [api.ok("AAPL", [(DAYS[4], 181.9)]), api.ok("AAPL", [(DAYS[0], 185.6)])]
    cfg = _cfg(api, ["AAPL"], url=api.url + "/p/{symbol}?start={start_date}&end={end_date}")
    run_source(engine, cfg)
    mark = read_watermark(engine, "prices")
    window = Window(dt.datetime(2023, 12, 1, tzinfo=dt.UTC), dt.datetime(2024, 1, 2, tzinfo=dt.UTC))
    results, _ = run_source(engine, cfg, window)
    assert api.requests[-1][2] == {"start": ["2023-12-01"], "end": ["2024-01-02"]}
    assert results[0]["inserted"] == 1
    assert read_watermark(engine, "prices") == mark


def test_a_missing_secret_is_a_clear_error(engine: Engine, api: PriceApi) -> None:
    cfg = _cfg(api, ["AAPL"], auth_header="X-Api-Key", auth_env="SEQCAST_TEST_UNSET_KEY")
    with pytest.raises(SeqcastError, match="SEQCAST_TEST_UNSET_KEY is not set"):
        run_source(engine, cfg)
