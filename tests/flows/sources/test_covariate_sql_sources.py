"""SQL sources that deliver covariates, by watermark in the rows' transaction, and the
project file's checks of ``covariate:`` blocks."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy import Engine, text

import db.covariates
from db.watermarks import read_watermark
from flows.errors import SeqcastError
from flows.project import load_project
from flows.sources.base import Window
from flows.sources.config import SqlSource
from flows.sources.runner import run_source
from tests.support import covariate_sources as cs
from tests.support.covariate_sources import T0

# --- SQL ---------------------------------------------------------------------------------


def _upstream(tmp_path: Path, rows: list[tuple[int, str, dt.datetime, str]]) -> str:
    url = f"sqlite:///{tmp_path / 'weather.db'}"
    eng = sa.create_engine(url)
    with eng.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE IF NOT EXISTS readings "
                "(id INTEGER PRIMARY KEY, station TEXT, taken_at TEXT, temp TEXT)"
            )
        )
        conn.execute(
            text("INSERT INTO readings VALUES (:i, :s, :t, :v)"),
            [{"i": i, "s": s, "t": t.isoformat(), "v": v} for i, s, t, v in rows],
        )
    eng.dispose()
    return url


def _sql(url: str) -> SqlSource:
    return SqlSource.model_validate(
        {
            "name": "station-db",
            "type": "sql",
            "url": url,
            "table": "readings",
            "ts_column": "taken_at",
            "value_column": "temp",
            "series_column": "station",
            "watermark_column": "id",
            "chunk_rows": 3,
            "covariate": {"kind": "known_future", "name": "temperature"},
        }
    )


def _readings(ids: range, station: str = "s1") -> list[tuple[int, str, dt.datetime, str]]:
    return [(i, station, T0 + dt.timedelta(hours=i), f"{i / 2}") for i in ids]


def test_sql_source_loads_covariates_by_watermark_in_the_rows_transaction(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cs.declare(engine, "s1")
    url = _upstream(tmp_path, [*_readings(range(1, 5)), (5, "s1", T0, "n/a"), (6, "pump", T0, "1")])
    record = db.covariates.record_rows
    calls = {"n": 0}

    def record_then_crash(*args: Any, **kw: Any) -> None:
        record(*args, **kw)  # rows, counts and the watermark are written, not committed
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("power cut")

    monkeypatch.setattr(db.covariates, "record_rows", record_then_crash)
    with pytest.raises(RuntimeError, match="power cut"):
        run_source(engine, _sql(url))
    assert len(cs.stored(engine)) == 3  # the first chunk only
    assert read_watermark(engine, "station-db") == {"type": "int", "value": 3}

    monkeypatch.setattr(db.covariates, "record_rows", record)
    results, failures = run_source(engine, _sql(url))
    assert failures == []
    assert cs.counts(results) == [(3, 1, 2, 1, False)]  # exactly the rest: ids 4..6
    reasons = cs.reasons(engine)
    assert "'n/a' is not a finite number" in reasons[0]
    assert "unknown series 'pump'" in reasons[1]
    assert read_watermark(engine, "station-db") == {"type": "int", "value": 6}
    assert len(cs.stored(engine)) == 4

    assert run_source(engine, _sql(url)) == ([], [])  # nothing new upstream
    _upstream(tmp_path, _readings(range(7, 9)))
    more, _ = run_source(engine, _sql(url))
    assert cs.counts(more) == [(2, 2, 0, 2, False)]
    assert read_watermark(engine, "station-db")["value"] == 8
    assert [k for _, _, k, _, _ in cs.stored(engine)] == ["s1"] * 6
    with engine.connect() as conn:
        batches = conn.execute(text("SELECT status FROM ingest_batches")).scalars().all()
    assert set(batches) == {"complete"}


def test_sql_covariate_backfill_replays_a_range_without_moving_the_watermark(
    engine: Engine, tmp_path: Path
) -> None:
    cs.declare(engine, "s1")
    url = _upstream(tmp_path, _readings(range(1, 8)))
    run_source(engine, _sql(url))
    with engine.begin() as conn:  # someone deleted part of the covariate's history
        conn.execute(text("DELETE FROM covariates WHERE value < 2"))
    assert len(cs.stored(engine)) == 4
    window = Window(T0 + dt.timedelta(hours=2), T0 + dt.timedelta(hours=5))  # ids 2..4
    results, _ = run_source(engine, _sql(url), window)
    assert [(r["received"], r["inserted"], r["updated"]) for r in results] == [(3, 2, 0)]
    assert len(cs.stored(engine)) == 6  # id 1 lies outside the window
    assert read_watermark(engine, "station-db") == {"type": "int", "value": 7}


# --- the project file --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            "{name: w, type: files, path: x, covariate: {kind: future, name: t}}",
            r"sources\[0\] \(name: w\)\.files\.covariate\.kind: Input should be "
            r"'known_future' or 'past_only'",
        ),
        (
            "{name: w, type: files, path: x, covariate: {kind: past_only, scope: site}}",
            r"sources\[0\] \(name: w\)\.files\.covariate\.scope: Input should be 'series'",
        ),
        (
            "{name: w, type: files, path: x, covariate: {kind: past_only, nme: t}}",
            r"sources\[0\] \(name: w\)\.files\.covariate\.nme: unknown key",
        ),
        (
            "{name: w, type: files, path: x, covariate: {name: t}}",
            r"sources\[0\] \(name: w\)\.files\.covariate\.kind: required; add it",
        ),
        (
            "{name: w, type: files, path: x, declare: {kind: sensor, freq: h}, "
            "covariate: {kind: past_only}}",
            r"sources\[0\] \(name: w\)\.files: covariate and declare: .* remove declare",
        ),
        (
            "{name: w, type: http, url: u, symbols: [s1], covariate: {kind: past_only}}",
            r"sources\[0\] \(name: w\)\.http: covariate\.name: required for a series-scoped "
            r"covariate of this source .* or use scope: global",
        ),
    ],
)
def test_bad_covariate_blocks_name_the_source_and_the_key(
    tmp_path: Path, source: str, message: str
) -> None:
    path = tmp_path / "seqcast.yaml"
    path.write_text(f"sources: [{source}]\n")
    with pytest.raises(SeqcastError, match=message) as info:
        load_project(path)
    assert str(path) in str(info.value)


def test_the_starter_files_sources_are_valid_once_uncommented(tmp_path: Path) -> None:
    from flows.cli.project import starter_file

    catalog = pd.DataFrame({"kind": ["sensor"], "freq": ["h"], "n_obs": [500]})
    lines = starter_file(catalog, None).splitlines()
    start = lines.index(next(x for x in lines if x.startswith("# sources:")))
    end = lines.index("sources: []")
    path = tmp_path / "seqcast.yaml"
    path.write_text("\n".join(x.removeprefix("# ") for x in lines[start:end]) + "\n")
    sources = load_project(path).sources
    assert [(s.name, s.covariate is not None) for s in sources] == [
        ("incoming-files", False),
        ("weather", True),
    ]
