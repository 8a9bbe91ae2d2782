"""The CLI: user errors are one line and exit 1; db upgrade and ingest work from the shell."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from db import make_engine
from db.migrate import head_revision
from flows.cli import app

runner = CliRunner()


def test_db_upgrade_creates_the_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("SEQCAST_DATABASE_URL", url)
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert f"migration {head_revision()}" in result.output
    with make_engine(url).connect() as conn:
        views = (
            conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'view' ORDER BY name"))
            .scalars()
            .all()
        )
    assert views == [
        "daily_sentiment",
        "forecast_accuracy",
        "forecast_vintages",
        "forecast_vs_actual",
        "latest_forecasts",
        "text_predictions_latest",
    ]


def test_flows_refuse_an_unmigrated_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEQCAST_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    result = runner.invoke(app, ["ingest", "--bundled", "glucose"])
    assert result.exit_code == 1
    assert "run `seqcast db upgrade`" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ingest"], "nothing to ingest"),
        (["ingest", "--kind", "sensor", "x.csv"], "give kind and freq together"),
        (["train", "--group", "nope"], "unknown group(s) ['nope']"),
    ],
)
def test_user_errors_are_one_line(
    args: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEQCAST_DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # DB paths: test_db.py
def test_ingest_a_file_from_the_shell(service_env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "obs.csv"
    path.write_text(
        "series_id,ts,value\n"
        "room-1,2024-01-01T00:00:00+00:00,20.5\n"
        "room-1,2024-01-01T01:00:00+00:00,oops\n"
        "room-1,2024-01-01T02:00:00,21\n"
    )
    result = runner.invoke(app, ["ingest", str(path), "--kind", "sensor", "--freq", "h"])
    assert result.exit_code == 0, result.output
    with make_engine(service_env["SEQCAST_DATABASE_URL"]).connect() as conn:
        batch = conn.execute(text("SELECT received, accepted, rejected FROM ingest_batches")).one()
        reasons = conn.execute(
            text("SELECT row_number, reason FROM rejected_rows ORDER BY row_number")
        ).all()
    assert tuple(batch) == (3, 1, 2)
    assert reasons[0][0] == 3 and "not a finite number" in reasons[0][1]
    assert reasons[1][0] == 4 and "no UTC offset" in reasons[1][1]
    assert f"{path.resolve()}:3: value 'oops' is not a finite number" in result.output
    rerun = runner.invoke(app, ["ingest", str(path), "--kind", "sensor", "--freq", "h"])
    assert rerun.exit_code == 0, rerun.output
    # The table's row for the file shows the batch loaded before (received 3, accepted 1,
    # rejected 2, inserted 1) marked already_loaded; nothing is written again.
    row = next(line for line in rerun.output.splitlines() if line.count("│") >= 8)
    cells = [c.strip() for c in row.split("│")[1:-1]]
    assert cells[1:] == ["3", "1", "2", "1", "0", "True"], rerun.output
    with make_engine(service_env["SEQCAST_DATABASE_URL"]).connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM ingest_batches")).scalar_one() == 1
        assert conn.execute(text("SELECT COUNT(*) FROM observations")).scalar_one() == 1
