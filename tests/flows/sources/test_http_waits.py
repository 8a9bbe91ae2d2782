"""The HTTP source's waits (rate limit, backoff, Retry-After), timed by a fake clock."""

from __future__ import annotations

import datetime as dt
import email.utils
import itertools
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from flows.errors import SeqcastError
from flows.sources.config import HttpSource
from flows.sources.http import RateLimiter, fetch_json
from tests.flows.sources.fake_clock import FakeClock


def _calls(limiter: RateLimiter, clock: FakeClock, n: int) -> list[float]:
    """When each of n back-to-back calls went out."""
    out = []
    for _ in range(n):
        limiter.wait()
        out.append(clock.monotonic())
    return out


def test_calls_are_spaced_evenly() -> None:
    clock = FakeClock()
    times = _calls(RateLimiter(5, clock), clock, 6)
    assert clock.sleeps == pytest.approx([0.2] * 5)
    assert [b - a for a, b in itertools.pairwise(times)] == pytest.approx([0.2] * 5)


def test_time_spent_between_calls_counts_toward_the_spacing() -> None:
    clock = FakeClock()
    limiter = RateLimiter(5, clock)
    limiter.wait()
    clock.advance(0.15)  # a slow request
    limiter.wait()
    assert clock.sleeps == pytest.approx([0.05])
    clock.advance(0.3)  # slower than the spacing: no wait at all
    limiter.wait()
    assert clock.sleeps == pytest.approx([0.05])


def test_an_idle_limiter_saves_up_no_burst() -> None:
    clock = FakeClock()
    limiter = RateLimiter(5, clock)
    limiter.wait()
    clock.advance(10.0)  # idle long enough for 50 calls
    times = _calls(limiter, clock, 4)
    assert clock.sleeps == pytest.approx([0.2] * 3)  # the first goes at once, then spaced
    assert times[-1] - times[0] == pytest.approx(0.6)


Reply = Callable[[httpx.Request, FakeClock], httpx.Response]


def _fetch(replies: list[Reply], **kw: Any) -> tuple[Any, FakeClock, int]:
    """fetch_json against scripted replies: (body or the error, the clock, requests made)."""
    cfg = HttpSource.model_validate(
        {"type": "http", "name": "p", "url": "http://api.test/{symbol}", "symbols": ["A"]}
        | {"backoff_s": 0.5, "max_backoff_s": 1.5}
        | kw
    )
    clock = FakeClock()
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return replies[min(len(seen), len(replies)) - 1](request, clock)

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        try:
            limiter = RateLimiter(1000, clock)  # 1 ms apart: every backoff is longer
            body = fetch_json(client, "http://api.test/A", {}, cfg, limiter)
        except SeqcastError as exc:
            body = exc
    return body, clock, len(seen)


def status(code: int, retry_after: str | Callable[[FakeClock], str] = "") -> Reply:
    def reply(request: httpx.Request, clock: FakeClock) -> httpx.Response:
        value = retry_after(clock) if callable(retry_after) else retry_after
        return httpx.Response(code, headers={"Retry-After": value} if value else {}, json=[1])

    return reply


def timeout(request: httpx.Request, clock: FakeClock) -> httpx.Response:
    raise httpx.ReadTimeout("read timed out", request=request)


def refused(request: httpx.Request, clock: FakeClock) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def test_failures_back_off_exponentially_up_to_the_cap() -> None:
    body, clock, n = _fetch([status(500)], retries=4)
    assert isinstance(body, SeqcastError) and "HTTP 500 on all 5 attempt(s)" in str(body)
    assert n == 5
    assert clock.sleeps == pytest.approx([0.5, 1.0, 1.5, 1.5])  # none after the last attempt


def test_timeouts_and_network_errors_back_off_like_5xx() -> None:
    body, clock, n = _fetch([timeout, refused, status(503), status(200)])
    assert body == [1] and n == 4
    assert clock.sleeps == pytest.approx([0.5, 1.0, 1.5])


def test_retry_after_replaces_the_backoff_within_the_cap() -> None:
    def in_12_s(clock: FakeClock) -> str:
        return email.utils.format_datetime(
            dt.datetime.fromtimestamp(clock.time() + 12, dt.UTC), usegmt=True
        )

    replies = [status(429, "7"), status(503, in_12_s), status(429, "120"), status(429, "soon")]
    body, clock, n = _fetch([*replies, status(200)], retries=4, max_backoff_s=30)
    assert body == [1] and n == 5
    assert clock.sleeps == pytest.approx([7, 12, 30, 4.0])  # unreadable: the backoff 0.5 * 2**3


def test_a_client_error_is_not_retried() -> None:
    body, clock, n = _fetch([status(404)])
    assert isinstance(body, SeqcastError) and "HTTP 404" in str(body)
    assert (n, clock.sleeps) == (1, [])
