"""The sources file (YAML): which incremental sources the ``ingest`` flow loads, and how.

A source loads observations, or, with a ``covariate:`` block, covariate values into the
``covariates`` table (:mod:`flows.sources.covariate_loads`) through the same connector.

Secrets never appear in it: an HTTP auth header, an MQTT password or a database URL with a
password are read from environment variables that the file names (``*_env`` keys).
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy.engine import make_url

from db.covariate_validation import CovariateDeclaration
from db.observations import SeriesSpec
from flows.errors import SeqcastError
from flows.sources.layout import FileLayout

Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,60}$")]


def check_url(url: str | None, url_env: str | None) -> None:
    """The SQL sources' shared check: one of url and url_env, and no password in a url."""
    if (url is None) == (url_env is None):
        raise ValueError("give exactly one of url or url_env")
    if url is not None and make_url(url).password is not None:
        raise ValueError("the url holds a password: put the URL in a variable, use url_env")


def resolve_url(source: str, url: str | None, url_env: str | None) -> str:
    """The url, or the value of the variable url_env names (an error when it is not set)."""
    if url is not None:
        return url
    value = os.environ.get(url_env or "")
    if not value:
        raise SeqcastError(f"source {source}: environment variable {url_env} is not set")
    return value


class Declare(BaseModel):
    """Declare the series a source introduces (only ids matching ``match``, when given)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str
    freq: str
    unit: str | None = None
    match: str | None = Field(None, description="regex a new series id must fully match")

    def spec(self, source: str) -> SeriesSpec:
        return SeriesSpec(self.kind, self.freq, self.unit, source, self.match)


class CovariateLoad(BaseModel):
    """What a source delivers when it delivers covariates rather than observations.

    A files source reads covariate files (``ts, value``, ``series_id`` or ``group`` for the
    scope, ``name`` unless named here); the other sources' series id (their ``series_id``
    template) is the row's scope key: a series id, a group name, or for the global scope,
    which has no key, the covariate's name when ``name`` is not given.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["known_future", "past_only"] = Field(
        description="known_future: known over the horizon; past_only: up to the origin only"
    )
    scope: Literal["series", "group", "global"] = "series"
    name: str | None = Field(None, min_length=1, max_length=200, description="the covariate")

    def declaration(self) -> CovariateDeclaration:
        return CovariateDeclaration(self.kind, self.scope, self.name)


class _Source(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    declare: Declare | None = None
    covariate: CovariateLoad | None = Field(
        None, description="load covariates (this kind, scope, name) instead of observations"
    )
    assume_timezone: str | None = Field(None, description="zone for timestamps without offset")
    chunk_rows: int = Field(10_000, ge=1, le=1_000_000)

    @model_validator(mode="after")
    def _covariate_fits(self) -> Self:
        cov = self.covariate
        if cov is None:
            return self
        if self.declare is not None:
            raise ValueError(
                "covariate and declare: a covariate source declares no series; remove "
                "declare (series-scoped covariates need their series declared already)"
            )
        if getattr(self, "type", "files") != "files" and cov.name is None and cov.scope != "global":
            raise ValueError(
                f"covariate.name: required for a {cov.scope}-scoped covariate of this source "
                "(its series_id gives the scope key); name the covariate, or use scope: global "
                "to take each row's name from series_id"
            )
        return self

    def series_spec(self) -> SeriesSpec | None:
        return self.declare.spec(self.name) if self.declare else None


class FilesSource(_Source):
    """CSV/Parquet files from a directory or a glob; new content only. Long format
    (``series_id, ts, value``) unless ``layout`` says otherwise (flows.sources.layout)."""

    type: Literal["files"]
    path: str = Field(description="a directory (all .csv/.csv.gz/.parquet in it) or a glob")
    layout: FileLayout | None = Field(
        None, description="other column names, wide files, one series per file, decimal comma"
    )

    @model_validator(mode="after")
    def _layout_fits(self) -> Self:
        if self.layout is not None and self.covariate is not None:
            raise ValueError(
                "layout and covariate: covariate files have their own columns (docs/sources.md)"
            )
        return self


class MqttSource(_Source):
    """JSON messages from an MQTT topic filter, consumed with a persistent QoS 1 session."""

    type: Literal["mqtt"]
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    topic: str = Field(description="topic filter, e.g. plant/+/+")
    client_id: str | None = Field(None, description="fixed session id (default seqcast-NAME)")
    qos: Literal[1, 2] = 1
    series_id: str = Field("{topic}/{field}", description="template: {t[i]}, {topic}, {field}")
    timestamp_field: str = "ts"
    timestamp_unit: Literal["iso", "s", "ms"] = "iso"
    value_fields: list[str] | None = Field(None, description="default: every numeric field")
    username_env: str | None = None
    password_env: str | None = None
    batch_size: int = Field(500, ge=1, le=100_000)
    batch_seconds: float = Field(1.0, gt=0, description="longest wait to fill one micro-batch")
    idle_seconds: float = Field(2.0, gt=0, description="a drain stops after this long idle")
    drain_seconds: float = Field(60.0, gt=0, description="... or after this long in all")
    connect_timeout_s: float = Field(10.0, gt=0)

    @property
    def session_id(self) -> str:
        return self.client_id or f"seqcast-{self.name}"


class HttpRequests(BaseModel):
    """How an HTTP source asks (shared by the series and the document sources): where a
    first request starts, credentials, timeouts, retries with backoff, a rate limit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: str = Field("1970-01-01T00:00:00+00:00", description="{start} before any watermark")
    auth_header: str | None = None
    auth_env: str | None = Field(None, description="environment variable holding the header")
    auth_prefix: str = ""
    timeout_s: float = Field(10.0, gt=0)
    retries: int = Field(3, ge=0, le=20)
    backoff_s: float = Field(0.5, ge=0)
    max_backoff_s: float = Field(30.0, ge=0)
    rate_per_second: float = Field(5.0, gt=0)

    @model_validator(mode="after")
    def _auth_pair(self) -> Self:
        if (self.auth_header is None) != (self.auth_env is None):
            raise ValueError("give auth_header and auth_env together")
        try:
            aware = dt.datetime.fromisoformat(self.start).tzinfo is not None
        except ValueError:
            aware = False
        if not aware:
            raise ValueError(f"start {self.start!r}: give an ISO time with offset, e.g. ...Z")
        return self

    def start_time(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.start).astimezone(dt.UTC)


class HttpSource(_Source, HttpRequests):
    """A JSON-over-HTTP price API polled per symbol."""

    type: Literal["http"]
    url: str = Field(description="template: {symbol} {start} {end} {start_date} {end_date} ...")
    symbols: list[str] = Field(min_length=1)
    series_id: str = "{symbol}"
    records: str = Field("", description="dotted path to the list of records ('' = the body)")
    timestamp_field: str = "t"
    timestamp_unit: Literal["iso", "s", "ms"] = "iso"
    value_field: str = "price"


class SqlSource(_Source):
    """New rows of a table in another database, by a watermark column."""

    type: Literal["sql"]
    url: str | None = Field(None, description="SQLAlchemy URL without a password")
    url_env: str | None = Field(None, description="or the environment variable holding the URL")
    table: str
    db_schema: str | None = None
    ts_column: str
    value_column: str
    series_column: str | None = None
    series_id: str = Field("{series}", description="template; {series} is series_column's value")
    watermark_column: str | None = Field(None, description="default: ts_column")

    @model_validator(mode="after")
    def _one_url(self) -> SqlSource:
        check_url(self.url, self.url_env)
        if self.series_column is None and "{series}" in self.series_id:
            raise ValueError("series_id needs series_column, or give a fixed series_id")
        return self

    def resolved_url(self) -> str:
        return resolve_url(self.name, self.url, self.url_env)


SourceConfig = Annotated[
    FilesSource | MqttSource | HttpSource | SqlSource, Field(discriminator="type")
]
