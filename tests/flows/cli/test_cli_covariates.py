"""``seqcast ingest covariates`` and ``seqcast ingest attributes`` from the shell: counts,
rejects with file:line and reason, idempotent reruns, and one-line errors for bad options."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from db import make_engine
from db.covariates import read_attributes, read_covariates
from db.ingest import ingest_observations
from db.observations import SeriesSpec
from flows.cli import app

runner = CliRunner()


@pytest.fixture
def url(database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("SEQCAST_DATABASE_URL", database_url)
    raw = pd.DataFrame(
        {"series_id": ["room-1", "room-2"], "ts": "2024-01-01T00:00:00+00:00", "value": "1",
         "row_number": [2, 3]}
    )  # fmt: skip
    engine = make_engine(database_url)
    ingest_observations(engine, raw, "seed", "seed", SeriesSpec("sensor", "h"))
    engine.dispose()
    return database_url


def _cells(output: str) -> list[str]:
    row = next(line for line in output.splitlines() if line.count("│") >= 8)
    return [c.strip() for c in row.split("│")[1:-1]]


def test_ingest_covariates_reconciles_reports_rejects_and_reruns_as_a_no_op(
    url: str, tmp_path: Path
) -> None:
    path = tmp_path / "temperature.csv"
    path.write_text(
        "series_id,ts,value\n"
        "room-1,2024-01-01T00:00:00+00:00,20.5\n"
        "room-1,2024-01-01T01:00:00+00:00,warm\n"
        "room-9,2024-01-01T01:00:00+00:00,3\n"
        "room-2,2024-01-01T00:00:00+00:00,19\n"
    )
    args = ["ingest", "covariates", str(path), "--name", "temperature", "--kind", "known_future"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert _cells(result.output)[1:] == ["4", "2", "2", "2", "0", "False"], result.output
    assert f"{path.resolve()}:3: value 'warm' is not a finite number" in result.output
    assert f"{path.resolve()}:4: unknown series 'room-9'" in result.output
    rerun = runner.invoke(app, args)
    assert rerun.exit_code == 0 and _cells(rerun.output)[-1] == "True", rerun.output
    engine = make_engine(url)
    wide = read_covariates(engine, ["temperature"], {"room-1": None, "room-2": None})
    with engine.connect() as conn:
        batches = conn.execute(text("SELECT received, accepted, rejected FROM ingest_batches"))
        counts = sorted(tuple(b) for b in batches)
    engine.dispose()
    assert wide["temperature"].tolist() == [20.5, 19.0]
    assert counts == [(2, 2, 0), (4, 2, 2)]  # the seed's batch and the file's, once


def test_group_and_global_covariate_files_and_attributes(url: str, tmp_path: Path) -> None:
    group = tmp_path / "mood.csv"
    group.write_text("group,name,ts,value\nrooms,mood,2024-01-01T00:00:00Z,0.5\n")
    result = runner.invoke(
        app, ["ingest", "covariates", str(group), "--kind", "past_only", "--scope", "group"]
    )
    assert result.exit_code == 0 and _cells(result.output)[1:4] == ["1", "1", "0"], result.output
    everyone = tmp_path / "holiday.csv"
    everyone.write_text("ts,value\n2024-01-01T00:00:00Z,1\n")
    result = runner.invoke(app, ["ingest", "covariates", str(everyone), "--name", "holiday",
                                 "--kind", "known_future", "--scope", "global"])  # fmt: skip
    assert result.exit_code == 0, result.output
    attrs = tmp_path / "rooms.csv"
    attrs.write_text("series_id,name,value\nroom-1,floor,north\nroom-2,floor,south\n")
    result = runner.invoke(app, ["ingest", "attributes", str(attrs), "--kind", "categorical"])
    assert result.exit_code == 0 and _cells(result.output)[1:4] == ["2", "2", "0"], result.output
    engine = make_engine(url)
    wide = read_covariates(engine, ["mood", "holiday"], {"room-1": "rooms"})
    stored = read_attributes(engine, ["room-1", "room-2"])
    engine.dispose()
    assert wide[["mood", "holiday"]].values.tolist() == [[0.5, 1.0]]
    assert stored["value_text"].tolist() == ["north", "south"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_bad_options_and_files_are_one_line_errors(url: str, tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("ts,value\n2024-01-01T00:00:00Z,1\n")
    for args, message in [
        (["--kind", "future"], "--kind / --scope / --name: covariate kind 'future': choose from"),
        (["--kind", "past_only", "--scope", "planet"], "covariate scope 'planet': choose from"),
        (["--kind", "past_only", "--name", "t"], "missing column(s) series_id"),
        (["--kind", "past_only", "--scope", "global"], "missing column(s) name"),
    ]:
        result = runner.invoke(app, ["ingest", "covariates", str(path), *args])
        assert result.exit_code == 1, result.output
        assert message in result.output and "Traceback" not in result.output, result.output
    result = runner.invoke(app, ["ingest", "attributes", str(path), "--kind", "ordinal"])
    assert result.exit_code == 1 and "attribute kind 'ordinal'" in result.output, result.output
