"""Forecast runs and their rows: one transaction per run, idempotent per model and input."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, func, insert, select, text
from sqlalchemy.exc import IntegrityError

from db.bulk import (
    SQLITE_TS_FORMAT,
    CopyColumn,
    copy_binary,
    nullable,
    sqlite_insert,
    text_per_distinct,
    utc_text,
)
from db.engine import is_postgres
from db.schema import forecast_runs, forecasts
from db.views import VIEW_NAMES

FORECAST_COLUMNS = ("series_id", "ts", "step", "yhat", "yhat_lower", "yhat_upper")


@dataclass(frozen=True)
class ForecastRun:
    """What a forecast run records besides its rows."""

    model_name: str
    model_version: str
    mlflow_run_id: str
    horizon: int
    issued_at: dt.datetime
    input_sha256: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WrittenRun:
    """The outcome of :func:`write_forecast_run`."""

    run_id: int
    rows: int
    created: bool


def _find_run(conn: Connection, run: ForecastRun) -> WrittenRun | None:
    """The run already written for this model version and input, if any."""
    prior = conn.execute(
        select(forecast_runs.c.run_id).where(
            forecast_runs.c.model_name == run.model_name,
            forecast_runs.c.model_version == run.model_version,
            forecast_runs.c.input_sha256 == run.input_sha256,
        )
    ).scalar_one_or_none()
    if prior is None:
        return None
    n = conn.execute(
        select(func.count()).select_from(forecasts).where(forecasts.c.run_id == prior)
    ).scalar_one()
    return WrittenRun(run_id=prior, rows=int(n), created=False)


def write_forecast_run(engine: Engine, run: ForecastRun, rows: pd.DataFrame) -> WrittenRun:
    """Write a run and all its rows in one transaction (see :func:`_write`).

    Two processes writing the same run at once both succeed: the loser of the race gets the
    winner's run back.
    """
    try:
        return _write(engine, run, rows)
    except IntegrityError:
        with engine.connect() as conn:
            existing = _find_run(conn, run)
        if existing is None:
            raise  # not the race: e.g. a row for an undeclared series
        return existing


def _write(engine: Engine, run: ForecastRun, rows: pd.DataFrame) -> WrittenRun:
    """Write a run and all its rows in one transaction, so readers never see half a run.

    A run with the same model name, version and input hash as an earlier one is not written
    again; the earlier run is returned with ``created=False``.
    """
    missing = [c for c in FORECAST_COLUMNS if c not in rows.columns]
    if missing:
        raise ValueError(f"forecast rows lack columns {missing}")
    with engine.begin() as conn:
        prior = _find_run(conn, run)
        if prior is not None:
            return prior
        run_id = conn.execute(
            insert(forecast_runs).returning(forecast_runs.c.run_id),
            {
                "model_name": run.model_name,
                "model_version": run.model_version,
                "mlflow_run_id": run.mlflow_run_id,
                "horizon": run.horizon,
                "issued_at": run.issued_at,
                "created_at": dt.datetime.now(dt.UTC),
                "input_sha256": run.input_sha256,
                "n_series": int(rows["series_id"].nunique()),
                "details": run.details,
            },
        ).scalar_one()
        _insert_rows(conn, run_id, rows[list(FORECAST_COLUMNS)])
    return WrittenRun(run_id=run_id, rows=len(rows), created=True)


def _insert_rows(conn: Connection, run_id: int, frame: pd.DataFrame) -> None:
    """Bulk-insert a run's rows: COPY on PostgreSQL, executemany of tuples on SQLite.

    Values are converted as the bound parameters of an INSERT would be: ids as ``str``, times
    to UTC, steps as integers, floats with missing bounds as NULL.
    """
    if frame.empty:
        return
    ts = pd.to_datetime(frame["ts"], utc=True)
    step = frame["step"].astype(np.int64)
    yhat = frame["yhat"].astype(float)
    lower, upper = frame["yhat_lower"].astype(float), frame["yhat_upper"].astype(float)
    series_id = text_per_distinct(frame["series_id"])
    columns = ["run_id", *FORECAST_COLUMNS]
    if is_postgres(conn):
        # A new run has no rows yet: COPY straight into the table, in binary (yhat NaN is
        # stored as NaN, NOT NULL like an INSERT of it; missing bounds are NULL).
        copy_binary(
            conn,
            "forecasts",
            [
                CopyColumn("run_id", "int4", run_id),
                CopyColumn("series_id", "text", series_id),
                CopyColumn("ts", "timestamptz", ts),
                CopyColumn("step", "int4", step.to_numpy()),
                CopyColumn("yhat", "float8", yhat.to_numpy()),
                CopyColumn("yhat_lower", "float8", lower.to_numpy(), nan_is_null=True),
                CopyColumn("yhat_upper", "float8", upper.to_numpy(), nan_is_null=True),
            ],
            len(frame),
        )
        return
    records = zip(
        [run_id] * len(frame),
        series_id.tolist(),
        utc_text(ts, SQLITE_TS_FORMAT).tolist(),
        step.tolist(),
        yhat.tolist(),
        nullable(lower),
        nullable(upper),
        strict=True,
    )
    sqlite_insert(conn, "forecasts", columns, records)


def read_view(engine: Engine, view: str, series_id: str | None = None) -> pd.DataFrame:
    """Read one of the analysts' views (:data:`db.views.VIEW_NAMES`), times as UTC."""
    if view not in VIEW_NAMES:
        raise ValueError(f"unknown view {view!r}; choose one of {VIEW_NAMES}")
    sql = f"SELECT * FROM {view}"  # view is one of the literals in VIEW_NAMES, never user text
    params: dict[str, Any] = {}
    if series_id is not None:
        sql += " WHERE series_id = :series_id"
        params["series_id"] = series_id
    sql += (
        " ORDER BY series_id, model_name, model_version, step, window_days"
        if view == "forecast_accuracy"
        else " ORDER BY series_id, ts"
    )
    with engine.connect() as conn:
        frame = pd.read_sql(text(sql), conn, params=params)
    for col in ("ts", "issued_at", "created_at", "window_start", "window_end"):
        if col in frame.columns:
            frame[col] = pd.to_datetime(frame[col], utc=True, format="ISO8601")
    return frame
