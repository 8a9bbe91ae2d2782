"""The fast bulk paths (COPY / executemany of tuples, per-distinct parsing) keep behaviour.

Typed frames validate exactly like their text form; ingest counts, rejects and first-row-wins
hold across chunks; forecast rows read back as written, in SQLAlchemy's storage format, and
constraint violations stay SQLAlchemy IntegrityErrors that leave no partial run.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from db.forecasts import ForecastRun, write_forecast_run
from db.ingest import ingest_chunks, ingest_observations
from db.observations import SeriesSpec, read_observations
from db.validation import validate_observations

SPEC = SeriesSpec(kind="sensor", freq="h")


def _typed(n: int = 60) -> pd.DataFrame:
    ts = pd.Series(pd.date_range("2024-01-01", periods=n, freq="h", tz="Europe/Paris"))
    frame = pd.DataFrame(
        {
            "series_id": np.where(np.arange(n) % 2, "s1", " s2 "),
            "ts": ts,
            "value": np.linspace(-5, 5, n),
            "row_number": np.arange(2, n + 2),
        }
    )
    frame.loc[3, "ts"] = pd.NaT
    frame.loc[5, "value"] = np.nan
    frame.loc[7, "value"] = np.inf
    frame.loc[9, "series_id"] = None
    frame.loc[11, "series_id"] = "unknown"
    frame.loc[13, ["series_id", "ts", "value"]] = frame.loc[12, ["series_id", "ts", "value"]]
    frame.loc[15, ["series_id", "ts"]] = frame.loc[14, ["series_id", "ts"]]  # conflicting value
    return frame


def _as_text(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    out["ts"] = [("" if pd.isna(t) else t.isoformat()) for t in frame["ts"]]
    out["value"] = ["" if pd.isna(v) else repr(float(v)) for v in frame["value"]]
    return out


def test_typed_frames_validate_like_their_text() -> None:
    typed = validate_observations(_typed(), {"s1", "s2"})
    textual = validate_observations(_as_text(_typed()), {"s1", "s2"})
    pd.testing.assert_frame_equal(typed.accepted, textual.accepted)
    assert typed.rejected["row_number"].tolist() == textual.rejected["row_number"].tolist()
    reasons = dict(zip(typed.rejected["row_number"], typed.rejected["reason"], strict=True))
    # A missing typed timestamp or value is rejected (its text form reads "nan").
    assert reasons[5].startswith(("empty timestamp", "unparseable timestamp"))
    assert reasons[7].startswith(("empty value", "value"))
    assert reasons[9] == "value 'inf' is not a finite number"
    assert reasons[11] == "empty series_id"
    assert reasons[13].startswith("unknown series 'unknown'")
    assert reasons[15] == "duplicate of row 14"
    assert (
        reasons[16]
        == reasons[17]
        == "conflicting values for the same series_id and ts in this batch"
    )
    assert len(typed.accepted) + len(typed.rejected) == len(_typed())
    assert typed.accepted["series_id"].isin(["s1", "s2"]).all()


def test_repeated_timestamps_are_parsed_per_row_not_per_first_occurrence() -> None:
    raw = pd.DataFrame(
        {
            "series_id": ["s1", "s2", "s1", "s2"],
            "ts": ["2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z", "x", "2024-01-01T01:00:00"],
            "value": ["1", "2", "3", "4"],
            "row_number": [2, 3, 4, 5],
        }
    )
    out = validate_observations(raw, {"s1", "s2"})
    assert out.accepted["row_number"].tolist() == [2, 3]
    assert out.rejected["row_number"].tolist() == [4, 5]
    assert out.rejected["reason"].iloc[0] == "unparseable timestamp 'x'"


def test_chunked_typed_ingest_counts_and_upserts(engine: Engine) -> None:
    n = 500
    frame = pd.DataFrame(
        {
            "series_id": np.where(np.arange(n) < n // 2, "a", "b"),
            "ts": list(pd.date_range("2024-01-01", periods=n // 2, freq="h", tz="UTC")) * 2,
            "value": np.arange(n, dtype=float),
            "row_number": np.arange(1, n + 1),
        }
    )
    chunks = [frame.iloc[i : i + 100] for i in range(0, n, 100)]
    first = ingest_chunks(engine, chunks, "typed", "h1", SPEC)
    assert (first.received, first.accepted, first.inserted, first.updated) == (n, n, n, 0)
    assert ingest_chunks(engine, chunks, "typed", "h1", SPEC).already_loaded
    second = frame.assign(value=frame["value"].where(frame["row_number"] % 5 != 0, -1.0))
    again = ingest_observations(engine, second, "typed", "h2", SPEC)
    changed = int((second["row_number"] % 5 == 0).sum())
    assert (again.accepted, again.inserted, again.updated) == (n, 0, changed)
    back = read_observations(engine, ["a", "b"])
    assert back["value"].tolist() == second["value"].tolist()
    assert back["ts"].tolist() == frame["ts"].tolist()


def _hours(series: str, hours: list[int], value: float) -> pd.DataFrame:
    ts = [pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(hours=h) for h in hours]
    return pd.DataFrame(
        {"series_id": series, "ts": ts, "value": value, "row_number": range(1, len(ts) + 1)}
    )


def test_appends_and_interleaved_batches_count_and_store_the_same(engine: Engine) -> None:
    # SQLite inserts a batch directly when nothing is stored in its range (first load,
    # append) and stages and upserts it otherwise; both must count and store alike.
    first = ingest_observations(engine, _hours("s1", [0, 2, 4], 1.0), "a", "h1", SPEC)
    append = ingest_observations(engine, _hours("s1", [5, 6], 2.0), "a", "h2", SPEC)
    between = ingest_observations(engine, _hours("s1", [1, 3], 3.0), "a", "h3", SPEC)
    overlap = ingest_observations(engine, _hours("s1", [4, 7], 4.0), "a", "h4", SPEC)
    other = ingest_observations(engine, _hours("s2", [0, 2, 4], 5.0), "a", "h5", SPEC)
    counts = [(r.inserted, r.updated) for r in (first, append, between, overlap, other)]
    assert counts == [(3, 0), (2, 0), (2, 0), (1, 1), (3, 0)]
    back = read_observations(engine, ["s1", "s2"])
    assert back["value"].tolist() == [1, 3, 1, 3, 4, 2, 2, 4, 5, 5, 5]
    assert back["ts"].dt.hour.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 0, 2, 4]
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT ts FROM observations ORDER BY series_id, ts")).scalar()
        batches = conn.execute(
            text("SELECT COUNT(DISTINCT batch_id) FROM observations WHERE series_id = 's1'")
        ).scalar_one()
    assert batches == 4
    if engine.dialect.name == "sqlite":
        assert stored == "2024-01-01 00:00:00.000000"


def _rows(series: list[str], h: int = 4) -> pd.DataFrame:
    frame = pd.concat(
        [
            pd.DataFrame(
                {
                    "series_id": s,
                    "ts": pd.date_range("2024-01-01T01:00", periods=h, freq="h", tz="Asia/Tokyo"),
                    "step": np.arange(1, h + 1, dtype=float),
                    "yhat": np.arange(h) + 0.1,
                    "yhat_lower": np.arange(h) - 0.9,
                    "yhat_upper": np.arange(h) + 1.1,
                }
            )
            for s in series
        ],
        ignore_index=True,
    )
    frame.loc[1, ["yhat_lower", "yhat_upper"]] = np.nan
    return frame


def _seed(engine: Engine, series: list[str]) -> None:
    n = len(series)
    raw = pd.DataFrame(
        {"series_id": series, "ts": ["2024-01-01T00:00Z"] * n, "value": ["1"] * n}
    ).assign(row_number=range(2, n + 2))
    ingest_observations(engine, raw, "seed", "h", SPEC)


def _run(sha: str) -> ForecastRun:
    return ForecastRun("m", "1", "r", 4, pd.Timestamp("2024-01-01T00:00Z").to_pydatetime(), sha)


def test_forecast_rows_read_back_as_written(engine: Engine) -> None:
    _seed(engine, ["s1", "s2"])
    rows = _rows(["s1", "s2"])
    written = write_forecast_run(engine, _run("a"), rows)
    assert written.created and written.rows == len(rows)
    with engine.connect() as conn:
        back = conn.execute(
            text(
                "SELECT series_id, ts, step, yhat, yhat_lower, yhat_upper FROM forecasts "
                "WHERE run_id = :r ORDER BY series_id, step"
            ),
            {"r": written.run_id},
        ).all()
    assert [r[0] for r in back] == rows["series_id"].tolist()
    assert [r[2] for r in back] == [1, 2, 3, 4] * 2
    assert [r[3] for r in back] == rows["yhat"].tolist()
    assert back[1][4] is None and back[1][5] is None
    assert [r[4] for r in back[2:]] == rows["yhat_lower"].iloc[2:].tolist()
    if engine.dialect.name == "sqlite":  # SQLAlchemy's DATETIME text, as views compare it
        assert back[0][1] == "2023-12-31 16:00:00.000000"
    else:
        assert back[0][1] == pd.Timestamp("2023-12-31T16:00:00Z")
    assert not write_forecast_run(engine, _run("a"), rows).created


def test_forecast_constraint_violations_are_integrity_errors(engine: Engine) -> None:
    _seed(engine, ["s1"])
    duplicated = pd.concat([_rows(["s1"]), _rows(["s1"]).iloc[:1]], ignore_index=True)
    for bad in (_rows(["s1", "missing"]), duplicated):
        with pytest.raises(IntegrityError):
            write_forecast_run(engine, _run("b"), bad)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM forecast_runs")).scalar_one() == 0
        assert conn.execute(text("SELECT COUNT(*) FROM forecasts")).scalar_one() == 0
