"""Database behaviour on SQLite and PostgreSQL: idempotent ingest, rejects, atomic runs, views."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from sqlalchemy import Engine, text

from db.forecasts import ForecastRun, read_view, write_forecast_run
from db.ingest import ingest_observations
from db.migrate import current_revision, head_revision, require_current
from db.observations import SeriesSpec, list_series, read_observations

SPEC = SeriesSpec(kind="sensor", freq="h", unit="C")


def _raw(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["series_id", "ts", "value"])
    frame["row_number"] = range(2, len(frame) + 2)
    return frame


def _dump(engine: Engine) -> dict[str, list[tuple[object, ...]]]:
    tables = ("series", "observations", "ingest_batches", "rejected_rows")
    with engine.connect() as conn:
        return {
            t: sorted(map(tuple, conn.execute(text(f"SELECT * FROM {t}")).all()), key=repr)
            for t in tables
        }


GOOD = [
    ("s1", "2024-01-01T00:00:00+00:00", "1.5"),
    ("s1", "2024-01-01T01:00:00Z", "2.5"),
    ("s1", "2024-01-01T03:00:00+01:00", "2.0"),  # 02:00 UTC
    ("s2", "2024-01-01T00:00:00+00:00", "-4"),
]
BAD = [
    ("s1", "2024-01-01T05:00:00+00:00", "NaN"),
    ("s1", "2024-01-01T06:00:00+00:00", "inf"),
    ("s1", "2024-01-01T07:00:00+00:00", "abc"),
    ("s1", "not a time", "1"),
    ("s1", "2024-01-01T08:00:00", "1"),  # no offset
    ("", "2024-01-01T08:00:00+00:00", "1"),
    ("s1", "2024-01-01T00:00:00+00:00", "1.5"),  # repeat of the first row
]


def test_migrations_reach_head(engine: Engine) -> None:
    assert current_revision(engine) == head_revision()
    require_current(engine)


def test_ingest_reconciles_and_stores_every_reject_with_a_reason(engine: Engine) -> None:
    result = ingest_observations(engine, _raw(GOOD + BAD), "file.csv", "h1", SPEC)
    assert (result.received, result.accepted, result.rejected) == (11, 4, 7)
    assert result.accepted + result.rejected == result.received
    assert result.inserted == 4 and result.updated == 0
    with engine.connect() as conn:
        rejects = conn.execute(
            text("SELECT row_number, reason FROM rejected_rows ORDER BY row_number")
        ).all()
    reasons = dict(rejects)
    assert len(rejects) == 7
    assert "not a finite number" in reasons[6] and "not a finite number" in reasons[7]
    assert "not a finite number" in reasons[8]
    assert "unparseable timestamp" in reasons[9]
    assert "no UTC offset" in reasons[10]
    assert reasons[11] == "empty series_id"
    assert reasons[12] == "duplicate of row 2"
    obs = read_observations(engine, ["s1", "s2"])
    assert obs["ts"].dt.tz is not None
    s1 = obs[obs["series_id"] == "s1"]
    assert s1["ts"].dt.hour.tolist() == [0, 1, 2]
    assert s1["value"].tolist() == [1.5, 2.5, 2.0]


def test_ingesting_the_same_content_twice_changes_nothing(engine: Engine) -> None:
    first = ingest_observations(engine, _raw(GOOD + BAD), "file.csv", "h1", SPEC)
    before = _dump(engine)
    again = ingest_observations(engine, _raw(GOOD + BAD), "file.csv", "h1", SPEC)
    assert again.already_loaded and again.batch_id == first.batch_id
    assert _dump(engine) == before
    # The same rows under another name are a new batch, but no observation changes.
    other = ingest_observations(engine, _raw(GOOD), "copy.csv", "h2", SPEC)
    assert (other.inserted, other.updated) == (0, 0)
    assert _dump(engine)["observations"] == before["observations"]


def test_changed_values_are_updated_not_duplicated(engine: Engine) -> None:
    ingest_observations(engine, _raw(GOOD), "a.csv", "h1", SPEC)
    changed = [("s1", "2024-01-01T00:00:00+00:00", "9.0"), ("s1", "2024-01-01T04:00:00+00:00", "3")]
    result = ingest_observations(engine, _raw(changed), "b.csv", "h2", SPEC)
    assert (result.inserted, result.updated) == (1, 1)
    obs = read_observations(engine, ["s1"])
    assert len(obs) == 4 and obs["value"].iloc[0] == 9.0


def test_unknown_series_are_rejected_without_declaration(engine: Engine) -> None:
    result = ingest_observations(engine, _raw(GOOD), "a.csv", "h1", declare=None)
    assert result.accepted == 0 and result.rejected == 4
    with engine.connect() as conn:
        reason = conn.execute(text("SELECT reason FROM rejected_rows LIMIT 1")).scalar_one()
    assert "unknown series" in reason and "--kind" in reason


def test_hostile_identifiers_are_data(engine: Engine) -> None:
    evil = "x'); DROP TABLE observations; --"
    ingest_observations(engine, _raw([(evil, "2024-01-01T00:00:00Z", "1")]), evil, "h", SPEC)
    assert read_observations(engine, [evil])["series_id"].tolist() == [evil]
    assert evil in list_series(engine)["series_id"].tolist()


def _forecast_rows(series: str, start: str, h: int, base: float) -> pd.DataFrame:
    ts = pd.date_range(start, periods=h, freq="h", tz="UTC")
    return pd.DataFrame(
        {
            "series_id": series,
            "ts": ts,
            "step": range(1, h + 1),
            "yhat": [base + i for i in range(h)],
            "yhat_lower": [base - 1 + i for i in range(h)],
            "yhat_upper": [base + 1 + i for i in range(h)],
        }
    )


def _run(version: str, issued: str, sha: str) -> ForecastRun:
    return ForecastRun(
        "seqcast-test", version, "mlflow-run", 3, pd.Timestamp(issued).to_pydatetime(), sha
    )


def test_forecast_runs_are_idempotent_and_views_pick_the_latest(engine: Engine) -> None:
    ingest_observations(engine, _raw(GOOD), "a.csv", "h1", SPEC)
    first = write_forecast_run(
        engine,
        _run("1", "2024-01-01T00:00:00Z", "d1"),
        _forecast_rows("s1", "2024-01-01T01:00", 3, 10.0),
    )
    assert first.created and first.rows == 3
    again = write_forecast_run(
        engine,
        _run("1", "2024-01-01T00:00:00Z", "d1"),
        _forecast_rows("s1", "2024-01-01T01:00", 3, 10.0),
    )
    assert not again.created and again.run_id == first.run_id
    newer = write_forecast_run(
        engine,
        _run("2", "2024-01-01T01:00:00Z", "d2"),
        _forecast_rows("s1", "2024-01-01T02:00", 3, 20.0),
    )
    latest = read_view(engine, "latest_forecasts", "s1")
    assert latest["ts"].dt.hour.tolist() == [1, 2, 3, 4]
    # 01:00 only the first run covers; 02:00 and 03:00 come from the newer run.
    assert latest["run_id"].tolist() == [first.run_id, newer.run_id, newer.run_id, newer.run_id]
    assert latest["yhat"].tolist() == [10.0, 20.0, 21.0, 22.0]
    vs = read_view(engine, "forecast_vs_actual", "s1")
    # Actuals exist at 01:00 (2.5) and 02:00 (2.0): three forecast rows have an actual.
    assert len(vs) == 3
    row = vs[(vs["run_id"] == first.run_id) & (vs["ts"].dt.hour == 1)].iloc[0]
    assert row["actual"] == 2.5 and row["error"] == pytest.approx(2.5 - 10.0)
    assert row["abs_error"] == pytest.approx(7.5)


def test_a_failing_forecast_write_leaves_no_partial_run(engine: Engine) -> None:
    ingest_observations(engine, _raw(GOOD), "a.csv", "h1", SPEC)
    rows = pd.concat(
        [
            _forecast_rows("s1", "2024-01-01T01:00", 3, 1.0),
            _forecast_rows("nope", "2024-01-01T01:00", 1, 1.0),
        ]
    )
    with pytest.raises(Exception):  # noqa: B017 - FK violation, driver-specific type
        write_forecast_run(engine, _run("1", "2024-01-01T00:00:00Z", "d"), rows)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM forecast_runs")).scalar_one() == 0
        assert conn.execute(text("SELECT COUNT(*) FROM forecasts")).scalar_one() == 0


def test_timestamps_round_trip_as_utc(engine: Engine) -> None:
    ingest_observations(
        engine, _raw([("s1", "2024-06-01T12:00:00-07:00", "1")]), "tz.csv", "h", SPEC
    )
    ts = read_observations(engine, ["s1"])["ts"].iloc[0]
    assert ts == pd.Timestamp("2024-06-01T19:00:00Z")
    assert ts.tzinfo is not None and ts.utcoffset() == dt.timedelta(0)
