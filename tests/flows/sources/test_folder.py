"""Files source: a directory or glob, new content only, one bad file does not stop the rest."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine, text

from db.watermarks import read_watermark
from flows.errors import SeqcastError
from flows.sources.base import Window
from flows.sources.config import FilesSource
from flows.sources.runner import run_source


def _cfg(path: Path | str, **kw: Any) -> FilesSource:
    base = {
        "type": "files",
        "name": "drop",
        "path": str(path),
        "declare": {"kind": "sensor", "freq": "h"},
    }
    return FilesSource.model_validate(base | kw)


def _csv(path: Path, rows: list[str], mtime: float | None = None) -> Path:
    path.write_text("series_id,ts,value\n" + "".join(r + "\n" for r in rows))
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def test_a_directory_loads_new_files_only_and_remembers_them(
    engine: Engine, tmp_path: Path
) -> None:
    _csv(tmp_path / "a.csv", [f"s1,2024-01-01T{h:02d}:00:00Z,{h}" for h in range(5)], 1e9)
    _csv(tmp_path / "b.csv", ["s2,2024-01-01T00:00:00Z,1", "s2,2024-01-01T01:00:00Z,oops"], 1e9 + 1)
    pd.DataFrame(
        {"series_id": ["s3"], "ts": pd.to_datetime(["2024-01-01"], utc=True), "value": [2.0]}
    ).to_parquet(tmp_path / "c.parquet")
    (tmp_path / "notes.md").write_text("not data")
    results, failures = run_source(engine, _cfg(tmp_path))
    assert failures == []
    assert [
        (Path(r["source"]).name, r["received"], r["accepted"], r["rejected"]) for r in results
    ] == [
        ("a.csv", 5, 5, 0),
        ("b.csv", 2, 1, 1),
        ("c.parquet", 1, 1, 0),
    ]
    assert read_watermark(engine, "drop")["last_file"].endswith("c.parquet")

    again, _ = run_source(engine, _cfg(tmp_path))
    assert all(r["already_loaded"] for r in again) and len(again) == 3
    _csv(tmp_path / "d.csv", ["s1,2024-01-01T05:00:00Z,5"])
    third, _ = run_source(engine, _cfg(tmp_path))
    fresh = [r for r in third if not r["already_loaded"]]
    assert [(Path(r["source"]).name, r["inserted"]) for r in fresh] == [("d.csv", 1)]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM observations")).scalar_one() == 8


def test_a_bad_file_is_a_failure_and_the_others_load(engine: Engine, tmp_path: Path) -> None:
    _csv(tmp_path / "good.csv", ["s1,2024-01-01T00:00:00Z,1"])
    (tmp_path / "bad.csv").write_text("id,time\n1,2\n")
    results, failures = run_source(engine, _cfg(tmp_path / "*.csv"))
    assert [Path(r["source"]).name for r in results] == ["good.csv"]
    assert len(failures) == 1 and "bad.csv" in failures[0] and "missing column" in failures[0]


def test_backfill_takes_the_files_modified_in_the_window(engine: Engine, tmp_path: Path) -> None:
    jan = dt.datetime(2024, 1, 15, tzinfo=dt.UTC).timestamp()
    feb = dt.datetime(2024, 2, 15, tzinfo=dt.UTC).timestamp()
    _csv(tmp_path / "jan.csv", ["s1,2024-01-01T00:00:00Z,1"], jan)
    _csv(tmp_path / "feb.csv", ["s1,2024-02-01T00:00:00Z,2"], feb)
    window = Window(dt.datetime(2024, 2, 1, tzinfo=dt.UTC), dt.datetime(2024, 3, 1, tzinfo=dt.UTC))
    results, _ = run_source(engine, _cfg(tmp_path), window)
    assert [Path(r["source"]).name for r in results] == ["feb.csv"]
    assert read_watermark(engine, "drop") == {}  # a backfill leaves the watermark alone
    again, _ = run_source(engine, _cfg(tmp_path), window)
    assert [(r["inserted"], r["updated"], r["already_loaded"]) for r in again] == [(0, 0, False)]


def test_a_path_that_is_no_directory_or_glob_is_refused(engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(SeqcastError, match="is not a directory"):
        run_source(engine, _cfg(tmp_path / "missing"))
