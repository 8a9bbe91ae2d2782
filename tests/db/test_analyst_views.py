"""The analysts' views and every SQL example of docs/analysts.md, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import decimal
import math
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, text

from db.forecasts import read_view
from db.migrate import upgrade
from tests.conftest import _postgres_engine, _sqlite_engine
from tests.support import REPO, analyst_data

DOC = REPO / "docs" / "analysts.md"
SQL_BLOCK = re.compile(r"```sql\n(.*?)```", re.S)
VIEWS = ("latest_forecasts", "forecast_vintages", "forecast_vs_actual", "forecast_accuracy")


def doc_queries() -> list[str]:
    return [q.strip().rstrip(";") for q in SQL_BLOCK.findall(DOC.read_text())]


@pytest.fixture(scope="module")
def data(stocks: pd.DataFrame) -> analyst_data.AnalystData:
    return analyst_data.build(stocks)


@pytest.fixture
def filled(engine: Engine, data: analyst_data.AnalystData) -> Engine:
    analyst_data.fill(engine, data)
    return engine


def _normal(value: object) -> object:
    """One representation per value, whichever driver returned it."""
    if isinstance(value, dt.datetime):
        return pd.Timestamp(value).tz_convert("UTC") if value.tzinfo else pd.Timestamp(value)
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", value):
        return pd.Timestamp(value)  # SQLite's UTC text
    if isinstance(value, pd.Timestamp):
        return value.tz_convert("UTC").tz_localize(None) if value.tzinfo else value
    if isinstance(value, (decimal.Decimal, np.floating)):
        return float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _rows(engine: Engine, sql: str, skip: tuple[str, ...] = ()) -> list[tuple[object, ...]]:
    """Normalised rows, without the columns in ``skip``."""
    with engine.connect() as conn:
        result = conn.execute(text(sql))
        keep = [i for i, k in enumerate(result.keys()) if k not in skip]
        rows = result.all()
    out = []
    for row in rows:
        vals = [_normal(row[i]) for i in keep]
        out.append(
            tuple(
                v.tz_localize(None) if isinstance(v, pd.Timestamp) and v.tzinfo else v for v in vals
            )
        )
    return out


def _same(a: list[tuple[object, ...]], b: list[tuple[object, ...]]) -> None:
    assert len(a) == len(b)
    for ra, rb in zip(a, b, strict=True):
        for va, vb in zip(ra, rb, strict=True):
            if isinstance(va, float) and isinstance(vb, (float, int)):
                assert math.isclose(va, vb, rel_tol=1e-9, abs_tol=1e-9), (ra, rb)
            else:
                assert va == vb, (ra, rb)


def test_the_doc_has_the_examples_it_promises() -> None:
    queries = doc_queries()
    assert len(queries) >= 9
    for view in VIEWS:
        assert any(view in q for q in queries), view
    assert "## Text predictions" in DOC.read_text()


@pytest.mark.slow
@pytest.mark.parametrize("query", doc_queries(), ids=lambda q: q.splitlines()[0][3:50])
def test_every_doc_query_returns_rows(filled: Engine, query: str) -> None:
    rows = _rows(filled, query)
    assert rows, "the example returns nothing on a database with forecasts and actuals"
    assert all(v is not None for v in rows[0][:2])


@pytest.fixture
def both(data: analyst_data.AnalystData, tmp_path: Path) -> Iterator[tuple[Engine, Engine]]:
    """The same data in a SQLite file and in a PostgreSQL schema."""
    from tests.conftest import _postgres_reachable

    reason = _postgres_reachable()
    if reason is not None:
        import os

        if os.environ.get("SEQCAST_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    lite, pg = _sqlite_engine(tmp_path), _postgres_engine()
    engines = (next(lite), next(pg))
    for e in engines:
        analyst_data.fill(e, data)
    yield engines
    for gen in (lite, pg):
        gen.close()


@pytest.mark.slow
@pytest.mark.postgres
def test_views_and_examples_are_identical_on_both_databases(
    both: tuple[Engine, Engine],
) -> None:
    lite, pg = both
    for view in VIEWS:
        order = (
            "series_id, ts, run_id"
            if view != "forecast_accuracy"
            else ("series_id, model_name, model_version, step, window_days")
        )
        sql = f"SELECT * FROM {view} ORDER BY {order}"
        # created_at is when each database was written: the one column that differs.
        a = _rows(lite, sql, skip=("created_at",))
        assert a, view
        _same(a, _rows(pg, sql, skip=("created_at",)))
    for query in doc_queries():
        _same(_rows(lite, query), _rows(pg, query))


@pytest.mark.slow
def test_view_contents_follow_their_definition(
    filled: Engine, data: analyst_data.AnalystData
) -> None:
    vintages = read_view(filled, "forecast_vintages")
    latest = read_view(filled, "latest_forecasts")
    n_runs = len(data.issue_dates) + 1
    assert len(vintages) == n_runs * len(analyst_data.TICKERS) * 5
    # Issued every 3 days with horizon 5: targets are covered by one or two vintages.
    assert set(vintages["vintage"]) == {1, 2}
    newest = vintages[vintages["vintage"] == 1].sort_values(["series_id", "ts"])
    cols = ["series_id", "ts", "run_id", "yhat"]
    pd.testing.assert_frame_equal(
        newest[cols].reset_index(drop=True), latest[cols].reset_index(drop=True)
    )
    second = vintages[vintages["vintage"] == 2]
    first = vintages[vintages["vintage"] == 1].set_index(["series_id", "ts"])
    assert (
        second["issued_at"].to_numpy()
        < first.loc[
            list(zip(second["series_id"], second["ts"], strict=True)), "issued_at"
        ].to_numpy()
    ).all()

    actual = read_view(filled, "forecast_vs_actual")
    # Exactly the forecasts whose target has an observation: not the last run's (after the
    # data end), nor business days without trading (holidays).
    obs = data.frame.set_index(["series_id", "ts"])["value"]
    has_actual = pd.MultiIndex.from_frame(vintages[["series_id", "ts"]]).isin(obs.index)
    assert len(actual) == has_actual.sum()
    assert len(vintages) - len(analyst_data.TICKERS) * 5 - 30 < len(actual) < len(vintages)
    expected = obs.loc[list(zip(actual["series_id"], actual["ts"], strict=True))].to_numpy()
    np.testing.assert_allclose(actual["actual"], expected)
    np.testing.assert_allclose(actual["error"], actual["actual"] - actual["yhat"])
    np.testing.assert_allclose(actual["squared_error"], actual["error"] ** 2)
    np.testing.assert_allclose(actual["ape"], 100 * actual["abs_error"] / actual["actual"].abs())
    inside = (actual["actual"] >= actual["yhat_lower"]) & (actual["actual"] <= actual["yhat_upper"])
    assert (actual["in_interval"] == inside.astype(int)).all()
    assert 0 < inside.mean() < 1  # a real model on real prices: some misses, some hits

    acc = read_view(filled, "forecast_accuracy")
    assert set(acc["window_days"]) == {7, 30, 90}
    for (sid, step, days), row in acc.set_index(["series_id", "step", "window_days"]).iterrows():
        end = data.frame.loc[data.frame["series_id"] == sid, "ts"].max()
        assert row["window_end"] == end
        assert row["window_start"] == end - pd.Timedelta(days=days)
        part = actual[
            (actual["series_id"] == sid)
            & (actual["step"] == step)
            & (actual["ts"] > end - pd.Timedelta(days=days))
        ]
        assert row["n"] == len(part) > 0
        assert row["mae"] == pytest.approx(part["abs_error"].mean())
        assert row["rmse"] == pytest.approx(math.sqrt(part["squared_error"].mean()))
        assert row["bias"] == pytest.approx(part["error"].mean())
        assert row["coverage"] == pytest.approx(part["in_interval"].mean())
    # Longer windows hold more forecasts.
    n = acc.groupby("window_days")["n"].sum()
    assert n[7] < n[30] < n[90]


def test_downgrade_restores_the_original_view(tmp_path: Path) -> None:
    from alembic import command

    from db import make_engine
    from db.migrate import _config

    engine = make_engine(f"sqlite:///{tmp_path / 'v.db'}")
    upgrade(engine)
    cfg = _config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0004")  # undo the views migration 0005 (and 0006 above it)
        names = conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'view'")).all()
    assert sorted(n for (n,) in names) == [
        "daily_sentiment",
        "forecast_vs_actual",
        "latest_forecasts",
        "text_predictions_latest",
    ]
    engine.dispose()
