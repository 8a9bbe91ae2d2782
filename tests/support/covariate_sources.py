"""Helpers of the covariate source tests: declare series, read back what was stored."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
from sqlalchemy import Engine, text

from db.ingest import ingest_observations
from db.observations import SeriesSpec

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def declare(engine: Engine, *series_ids: str) -> None:
    raw = pd.DataFrame(
        {
            "series_id": list(series_ids),
            "ts": T0.isoformat(),
            "value": "1",
            "row_number": range(1, len(series_ids) + 1),
        }
    )
    ingest_observations(engine, raw, "seed", f"seed-{series_ids}", SeriesSpec("sensor", "h"))


def stored(engine: Engine) -> list[tuple[str, str, str, str, float]]:
    """Every covariate row as (name, scope, scope key, ISO UTC hour, value)."""
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT name, scope, scope_key, ts, value FROM covariates")).all()
    out = [
        (n, s, k, pd.Timestamp(t).tz_localize(None).strftime("%m-%dT%H"), float(v))
        for n, s, k, t, v in rows
    ]
    return sorted(out)


def reasons(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT reason FROM rejected_rows ORDER BY batch_id, row_number"))
        return [str(r) for (r,) in rows]


def counts(results: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    assert all(r["accepted"] + r["rejected"] == r["received"] for r in results)
    return [
        (r["received"], r["accepted"], r["rejected"], r["inserted"], r["already_loaded"])
        for r in results
    ]
