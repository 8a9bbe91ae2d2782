"""HTTP price API source: one JSON request per symbol, with timeouts, retries and a rate limit.

The URL template may use ``{symbol}``, ``{start}``/``{end}`` (ISO 8601 UTC, ``...Z``),
``{start_date}``/``{end_date}`` (YYYY-MM-DD) and ``{start_epoch}``/``{end_epoch}`` (seconds).
``start`` is the symbol's watermark (the latest timestamp loaded), or the configured start.
A symbol whose API keeps failing, or answers with something that is not JSON, is reported
as a failure; the other symbols still load. Records missing a field become rejects.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import os
import time
from typing import Any, Protocol
from urllib.parse import quote

import httpx
import pandas as pd

from db.watermarks import WatermarkUpdate
from flows.errors import SeqcastError
from flows.sources.base import (
    SourceFailure,
    SourceItems,
    SourceLoad,
    Window,
    format_ts,
    get_path,
    iso_z,
    rows_frame,
)
from flows.sources.config import HttpSource

RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class HttpPolicy(Protocol):
    """What requests need of a source's settings (series and document sources alike)."""

    @property
    def name(self) -> str: ...
    @property
    def timeout_s(self) -> float: ...
    @property
    def retries(self) -> int: ...
    @property
    def backoff_s(self) -> float: ...
    @property
    def max_backoff_s(self) -> float: ...
    @property
    def auth_header(self) -> str | None: ...
    @property
    def auth_env(self) -> str | None: ...
    @property
    def auth_prefix(self) -> str: ...


class Clock(Protocol):
    """How the source reads time and waits: the :mod:`time` module, or a fake one in tests."""

    def monotonic(self) -> float: ...

    def time(self) -> float: ...

    def sleep(self, seconds: float, /) -> None: ...


class RateLimiter:
    """At most ``per_second`` calls per second, spaced evenly, without bursts (one process)."""

    def __init__(self, per_second: float, clock: Clock = time) -> None:
        self.interval = 1.0 / per_second
        self.clock = clock
        self._next = 0.0

    def wait(self) -> None:
        """Sleep until the next call is allowed; time spent since the last call counts."""
        now = self.clock.monotonic()
        if self._next > now:
            self.clock.sleep(self._next - now)
        self._next = max(now, self._next) + self.interval


def _retry_after(response: httpx.Response, now: float) -> float | None:
    """Seconds from a Retry-After header (delta seconds, or an HTTP date after ``now``)."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def fetch_json(
    client: httpx.Client, url: str, headers: dict[str, str], cfg: HttpPolicy, limiter: RateLimiter
) -> Any:
    """GET ``url`` and decode JSON, retrying timeouts, network errors, 429 and 5xx.

    Waits (rate limit, backoff, Retry-After) go through the limiter's clock.
    """
    clock = limiter.clock
    shown = url.split("?")[0]  # query strings may carry API keys
    problem = ""
    for attempt in range(cfg.retries + 1):
        limiter.wait()
        delay = min(cfg.backoff_s * 2**attempt, cfg.max_backoff_s)
        try:
            response = client.get(url, headers=headers)
        except httpx.TimeoutException:
            problem = f"timed out after {cfg.timeout_s:g} s"
        except httpx.TransportError as exc:
            problem = f"network error ({type(exc).__name__}: {exc})"
        else:
            if response.status_code in RETRY_STATUS:
                problem = f"HTTP {response.status_code}"
                after = _retry_after(response, clock.time())
                delay = min(after, cfg.max_backoff_s) if after is not None else delay
            elif response.status_code >= 400:
                raise SeqcastError(
                    f"GET {shown}: HTTP {response.status_code} {response.text[:120]!r}; "
                    "check the URL template, the symbol and the credentials"
                )
            else:
                try:
                    return response.json()
                except ValueError as exc:
                    raise SeqcastError(
                        f"GET {shown}: the response is not valid JSON ({exc}); "
                        f"it starts with {response.text[:60]!r}"
                    ) from None
        if attempt < cfg.retries:
            clock.sleep(delay)
    raise SeqcastError(f"GET {shown}: {problem} on all {cfg.retries + 1} attempt(s); try later")


def auth_headers(cfg: HttpPolicy) -> dict[str, str]:
    if cfg.auth_header is None:
        return {}
    secret = os.environ.get(cfg.auth_env or "")
    if not secret:
        raise SeqcastError(f"source {cfg.name}: environment variable {cfg.auth_env} is not set")
    return {cfg.auth_header: cfg.auth_prefix + secret}


def build_url(template: str, symbol: str, start: dt.datetime, end: dt.datetime) -> str:
    """Fill the URL template (see module docstring)."""
    try:
        return template.format(
            symbol=quote(symbol, safe=""),
            start=iso_z(start),
            end=iso_z(end),
            start_date=start.astimezone(dt.UTC).date().isoformat(),
            end_date=end.astimezone(dt.UTC).date().isoformat(),
            start_epoch=int(start.timestamp()),
            end_epoch=int(end.timestamp()),
        )
    except (KeyError, IndexError, ValueError) as exc:
        raise SeqcastError(f"url template {template!r}: unknown placeholder {exc}") from None


def records_to_rows(cfg: HttpSource, symbol: str, body: Any) -> pd.DataFrame:
    """One row per record; a record without a usable field becomes a row with a read_error."""
    try:
        records = get_path(body, cfg.records)
    except KeyError as exc:
        raise SeqcastError(f"source {cfg.name} {symbol}: the response has {exc.args[0]}") from None
    if not isinstance(records, list):
        raise SeqcastError(
            f"source {cfg.name} {symbol}: records path {cfg.records!r} is not a list "
            f"but {type(records).__name__}"
        )
    series_id = cfg.series_id.format(symbol=symbol)
    rows: list[dict[str, Any]] = []
    for rec in records:
        row = {"series_id": series_id, "ts": "", "value": "", "read_error": ""}
        try:
            row["ts"] = format_ts(get_path(rec, cfg.timestamp_field), cfg.timestamp_unit)
            value = get_path(rec, cfg.value_field)
            row["value"] = "" if value is None else str(value)
        except KeyError as exc:
            row["read_error"] = f"record has {exc.args[0]}"
            row["value"] = str(rec)[:80]
        rows.append(row)
    return rows_frame(rows)


def http_loads(
    cfg: HttpSource, watermark: dict[str, Any], window: Window | None, clock: Clock = time
) -> SourceItems:
    """One load per symbol; the watermark keeps the latest timestamp per symbol."""
    limiter = RateLimiter(cfg.rate_per_second, clock)
    headers = auth_headers(cfg)
    default_start = cfg.start_time()
    with httpx.Client(timeout=httpx.Timeout(cfg.timeout_s), follow_redirects=True) as client:
        for symbol in cfg.symbols:
            label = f"http:{cfg.name}/{symbol}"
            if window is not None:
                start, end = window.start, window.end
            else:
                mark = watermark.get(symbol)
                start = dt.datetime.fromisoformat(mark) if mark else default_start
                end = dt.datetime.now(dt.UTC)
            try:
                url = build_url(cfg.url, symbol, start, end)
                body = fetch_json(client, url, headers, cfg, limiter)
                frame = records_to_rows(cfg, symbol, body)
            except SeqcastError as exc:
                yield SourceFailure(label, str(exc))
                continue
            update = None
            if window is None:  # a backfill never moves the live watermark
                parsed = pd.to_datetime(frame["ts"], utc=True, errors="coerce", format="ISO8601")
                latest = parsed.max()
                if pd.notna(latest) and (not watermark.get(symbol) or latest > start):
                    update = WatermarkUpdate(cfg.name, {symbol: latest.isoformat()})
            sha = hashlib.sha256(label.encode() + b"\0" + frame.to_csv().encode()).hexdigest()
            yield SourceLoad(label, sha, [frame], update)
