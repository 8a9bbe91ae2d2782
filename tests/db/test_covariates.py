"""Covariates and static attributes in the database (SQLite and PostgreSQL): validated,
idempotent ingest that reconciles received = accepted + rejected, and reads that resolve
series, group and global values."""

from __future__ import annotations

import pandas as pd
import pytest
from alembic import command
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from db.covariates import (
    AttributeDeclaration,
    CovariateDeclaration,
    covariate_kinds,
    ingest_attributes,
    ingest_covariates,
    read_attributes,
    read_covariates,
)
from db.ingest import ingest_observations
from db.migrate import _config, current_revision, head_revision, upgrade
from db.observations import SeriesSpec

TEMPERATURE = CovariateDeclaration(kind="known_future", scope="series", name="temperature")
AREA = AttributeDeclaration("numeric", "area")


def _declare(engine: Engine, *series_ids: str) -> None:
    raw = pd.DataFrame(
        {
            "series_id": list(series_ids),
            "ts": "2024-01-01T00:00:00+00:00",
            "value": "1",
            "row_number": range(2, len(series_ids) + 2),
        }
    )
    ingest_observations(engine, raw, "seed", f"seed-{series_ids}", SeriesSpec("sensor", "h"))


def _rows(rows: list[tuple[str, ...]], columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=columns)
    frame["row_number"] = range(2, len(frame) + 2)
    return frame


def _reasons(engine: Engine, batch_id: int) -> dict[int, str]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT row_number, reason FROM rejected_rows WHERE batch_id = :b"),
            {"b": batch_id},
        ).all()
    return {int(n): str(r) for n, r in rows}


def test_covariate_ingest_reconciles_and_gives_every_reject_a_reason(engine: Engine) -> None:
    _declare(engine, "s1", "s2")
    raw = _rows(
        [
            ("s1", "2024-01-01T00:00:00+00:00", "10.5"),
            ("s1", "2024-01-01T01:00:00Z", "11"),
            ("s2", "2024-01-01T00:00:00+00:00", "3"),
            ("nope", "2024-01-01T00:00:00+00:00", "3"),  # undeclared series
            ("", "2024-01-01T00:00:00+00:00", "3"),  # no series
            ("s1", "yesterday", "3"),  # bad timestamp
            ("s1", "2024-01-01T02:00:00+00:00", "warm"),  # bad value
            ("s1", "2024-01-01T00:00:00+00:00", "10.5"),  # repeat of the first row
            ("s2", "2024-01-01T05:00:00+00:00", "1"),  # conflicting pair
            ("s2", "2024-01-01T05:00:00+00:00", "2"),
        ],
        ["scope_key", "ts", "value"],
    )
    result = ingest_covariates(engine, raw, "temps.csv", "sha1", TEMPERATURE)
    assert (result.received, result.accepted, result.rejected) == (10, 3, 7)
    assert (result.inserted, result.updated) == (3, 0)
    reasons = _reasons(engine, result.batch_id)
    assert "unknown series 'nope'" in reasons[5]
    assert reasons[6] == "empty series_id"
    assert "unparseable timestamp" in reasons[7]
    assert "'warm' is not a finite number" in reasons[8]
    assert reasons[9] == "duplicate of row 2"
    conflict = "conflicting values for the same name, scope key and ts in this batch"
    assert reasons[10] == reasons[11] == conflict
    assert covariate_kinds(engine) == {"temperature": "known_future"}
    assert "known_future" in result.source and "temperature" in result.source


def test_covariate_reingest_changes_nothing_and_a_new_value_updates(engine: Engine) -> None:
    _declare(engine, "s1")
    raw = _rows(
        [("s1", "2024-01-01T00:00:00+00:00", "1"), ("s1", "2024-01-01T01:00:00+00:00", "2")],
        ["scope_key", "ts", "value"],
    )
    first = ingest_covariates(engine, raw, "t.csv", "sha1", TEMPERATURE)
    again = ingest_covariates(engine, raw, "t.csv", "sha1", TEMPERATURE)
    assert again.already_loaded and again.batch_id == first.batch_id
    same_rows = ingest_covariates(engine, raw, "t.csv", "sha2", TEMPERATURE)  # new file, same rows
    assert (same_rows.accepted, same_rows.inserted, same_rows.updated) == (2, 0, 0)
    changed = raw.assign(value=["1", "5"])
    result = ingest_covariates(engine, changed, "t.csv", "sha3", TEMPERATURE)
    assert (result.accepted, result.inserted, result.updated) == (2, 0, 1)
    wide = read_covariates(engine, ["temperature"], {"s1": None})
    assert wide["temperature"].tolist() == [1.0, 5.0]
    # The same file declared as another covariate is another batch, not "already loaded".
    other = ingest_covariates(
        engine, raw, "t.csv", "sha1", CovariateDeclaration("known_future", "series", "humidity")
    )
    assert not other.already_loaded and other.inserted == 2


def test_a_name_stored_as_one_kind_refuses_rows_of_the_other(engine: Engine) -> None:
    _declare(engine, "s1")
    raw = _rows([("s1", "2024-01-01T00:00:00+00:00", "1")], ["scope_key", "ts", "value"])
    ingest_covariates(engine, raw, "t.csv", "sha1", TEMPERATURE)
    past = CovariateDeclaration(kind="past_only", scope="series", name="temperature")
    result = ingest_covariates(engine, raw, "t.csv", "sha1", past)
    assert (result.received, result.accepted, result.rejected) == (1, 0, 1)
    assert "stored as known_future, not past_only" in _reasons(engine, result.batch_id)[2]


def test_reads_take_the_series_value_over_the_group_over_the_global(engine: Engine) -> None:
    _declare(engine, "a", "b", "c")
    ts = ["2024-01-01T00:00:00+00:00", "2024-01-01T01:00:00+00:00"]
    everyone = _rows([(ts[0], "0"), (ts[1], "0")], ["ts", "value"])
    ingest_covariates(
        engine, everyone, "g.csv", "g", CovariateDeclaration("past_only", "global", "sentiment")
    )
    group = _rows([("prices", ts[0], "1")], ["scope_key", "ts", "value"])
    ingest_covariates(
        engine, group, "p.csv", "p", CovariateDeclaration("past_only", "group", "sentiment")
    )
    own = _rows([("a", ts[0], "2")], ["scope_key", "ts", "value"])
    ingest_covariates(
        engine, own, "a.csv", "a", CovariateDeclaration("past_only", "series", "sentiment")
    )
    wide = read_covariates(
        engine, ["sentiment", "missing"], {"a": "prices", "b": "prices", "c": None}
    )
    values = {(r.series_id, r.ts.hour): r.sentiment for r in wide.itertuples()}
    assert values == {
        ("a", 0): 2.0, ("a", 1): 0.0, ("b", 0): 1.0, ("b", 1): 0.0, ("c", 0): 0.0, ("c", 1): 0.0
    }  # fmt: skip
    assert list(wide.columns) == ["series_id", "ts", "sentiment", "missing"]
    assert wide["missing"].isna().all() and str(wide["ts"].dt.tz) == "UTC"


def test_a_bounded_read_keeps_what_ffill_needs_and_nothing_older(engine: Engine) -> None:
    """From ``since`` on, plus each scope's last value before it: the values at or after
    ``since`` equal the full read's, and the last value before it is the one ffill carries."""
    _declare(engine, "a", "b")
    hours = pd.date_range("2024-01-01", periods=48, freq="h", tz="UTC")
    daily = _rows([(t.isoformat(), str(i)) for i, t in enumerate(hours[::24])], ["ts", "value"])
    ingest_covariates(
        engine, daily, "d.csv", "d", CovariateDeclaration("past_only", "global", "mood")
    )
    own = _rows(
        [("a", t.isoformat(), str(100 + i)) for i, t in enumerate(hours[:30])],
        ["scope_key", "ts", "value"],
    )
    mood = CovariateDeclaration("past_only", "series", "mood")
    ingest_covariates(engine, own, "a.csv", "a", mood)
    groups: dict[str, str | None] = {"a": None, "b": None}
    full = read_covariates(engine, ["mood"], groups)
    since = hours[28].to_pydatetime()
    bounded = read_covariates(engine, ["mood"], groups, since)
    later = full[full["ts"] >= since].reset_index(drop=True)
    pd.testing.assert_frame_equal(bounded[bounded["ts"] >= since].reset_index(drop=True), later)
    before = bounded[bounded["ts"] < since]
    # a: its own last value before since (hour 27); b: the global one of day 2 (hour 24)
    assert {(r.series_id, r.ts, r.mood) for r in before.itertuples()} == {
        ("a", hours[27], 127.0), ("b", hours[24], 1.0),
    }  # fmt: skip
    last = full[full["ts"] < since].groupby("series_id").tail(1)
    pd.testing.assert_frame_equal(
        before.reset_index(drop=True), last.reset_index(drop=True), check_like=True
    )
    assert len(full) == 30 + 2 and len(bounded) == len(later) + 2 == 4


def test_global_rows_take_no_key_and_group_rows_need_one(engine: Engine) -> None:
    raw = _rows([("x", "2024-01-01T00:00:00+00:00", "1")], ["scope_key", "ts", "value"])
    result = ingest_covariates(
        engine, raw, "g.csv", "g", CovariateDeclaration("known_future", "global", "holiday")
    )
    assert result.rejected == 1 and "takes no scope key" in _reasons(engine, result.batch_id)[2]
    blank = raw.assign(scope_key=" ")
    result = ingest_covariates(
        engine, blank, "g.csv", "g", CovariateDeclaration("known_future", "group", "holiday")
    )
    assert _reasons(engine, result.batch_id) == {2: "empty group name"}
    with pytest.raises(ValueError, match="choose from"):
        CovariateDeclaration(kind="future")
    with pytest.raises(ValueError, match="need a name column"):
        ingest_covariates(engine, raw, "g.csv", "g2", CovariateDeclaration("past_only", "group"))


def test_the_table_refuses_a_global_row_with_a_key(engine: Engine) -> None:
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO covariates (name, scope, scope_key, ts, kind, value) "
                "VALUES ('x', 'global', 'k', '2024-01-01 00:00:00.000000', 'past_only', 1)"
            )
        )


def test_static_attributes_numeric_and_categorical(engine: Engine) -> None:
    _declare(engine, "s1", "s2")
    numeric = _rows(
        [("s1", "12.5"), ("s2", "x"), ("zz", "1"), ("s1", "13")], ["series_id", "value"]
    )
    area = ingest_attributes(engine, numeric, "a.csv", "a", AREA)
    assert (area.received, area.accepted, area.rejected) == (4, 0, 4)
    reasons = _reasons(engine, area.batch_id)
    assert "not a finite number" in reasons[3] and "unknown series 'zz'" in reasons[4]
    conflict = "conflicting values for the same series_id and attribute name in this batch"
    assert reasons[2] == reasons[5] == conflict
    numeric = _rows([("s1", "12.5"), ("s2", "7")], ["series_id", "value"])
    area = ingest_attributes(engine, numeric, "a.csv", "a2", AREA)
    assert (area.accepted, area.inserted) == (2, 2)
    cats = _rows([("s1", "north", "region"), ("s2", "", "region")], ["series_id", "value", "name"])
    region = ingest_attributes(engine, cats, "r.csv", "r", AttributeDeclaration("categorical"))
    assert (region.accepted, region.rejected) == (1, 1)
    assert _reasons(engine, region.batch_id) == {3: "empty categorical value"}
    again = ingest_attributes(engine, numeric, "a.csv", "a3", AREA)
    assert (again.accepted, again.inserted, again.updated) == (2, 0, 0)
    clash = ingest_attributes(engine, cats, "r.csv", "r", AttributeDeclaration("numeric", "region"))
    assert "stored as categorical, not numeric" in _reasons(engine, clash.batch_id)[2]
    stored = read_attributes(engine, ["s1", "s2"])
    assert stored.to_dict("records") == [
        {"series_id": "s1", "name": "area", "kind": "numeric", "value_num": 12.5,
         "value_text": None},
        {"series_id": "s1", "name": "region", "kind": "categorical",
         "value_num": pytest.approx(float("nan"), nan_ok=True), "value_text": "north"},
        {"series_id": "s2", "name": "area", "kind": "numeric", "value_num": 7.0,
         "value_text": None},
    ]  # fmt: skip


def test_0008_downgrades_and_upgrades_again(engine: Engine) -> None:
    config = _config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0007")
    assert current_revision(engine) == "0007"
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM ingest_batches")).scalar_one() == 0
    assert upgrade(engine) == head_revision() == "0008"
    _declare(engine, "s1")
    raw = _rows([("s1", "2024-01-01T00:00:00+00:00", "1")], ["scope_key", "ts", "value"])
    assert ingest_covariates(engine, raw, "t.csv", "sha1", TEMPERATURE).inserted == 1
