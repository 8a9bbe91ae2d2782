"""Sources file, ingest flow and CLI: one run loads every source; the artifact lists each."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import text
from typer.testing import CliRunner

from db import make_engine
from flows.cli import app
from flows.errors import SeqcastError
from flows.project import load_project
from tests.support import REPO

ROOT = REPO
runner = CliRunner()


def test_the_example_sources_files_are_valid() -> None:
    full = load_project(ROOT / "config" / "sources.full-example.yaml")
    assert [s.type for s in full.sources] == ["files", "mqtt", "http", "sql", "http"]
    assert full.sources[-1].covariate is not None
    local = load_project(ROOT / "config" / "sources.example.yaml")
    assert [(s.type, s.covariate is not None) for s in local.sources] == [
        ("files", False),
        ("files", True),
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("sources: [{name: a, type: ftp}]", "does not match any of the expected tags"),
        (
            "sources: [{name: a, type: files}]",
            r"sources\[0\] \(name: a\)\.files\.path: required; add it",
        ),
        (
            "sources: [{name: a, type: sql, url: 'postgresql://u:pw@h/db', table: t, "
            "ts_column: ts, value_column: v, series_id: x}]",
            "the url holds a password",
        ),
        (
            "sources: [{name: a, type: files, path: x}, {name: a, type: files, path: y}]",
            "source names must be unique",
        ),
        ("sources: [{name: a, type: http, url: u, symbols: [X], auth_env: K}]", "auth_header"),
        ("sources: [oops", "not valid YAML"),
        (
            "sources: [{name: a, type: http, url: u, symbols: [X], start: '2024-01-01'}]",
            "give an ISO time with offset",
        ),
    ],
)
def test_bad_sources_files_name_the_file_and_the_key(
    tmp_path: Path, body: str, message: str
) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(body)
    with pytest.raises(SeqcastError, match=message) as info:
        load_project(path)
    assert str(path) in str(info.value)


def _upstream(tmp_path: Path, ids: range) -> str:
    url = f"sqlite:///{tmp_path / 'historian.db'}"
    eng = sa.create_engine(url)
    with eng.begin() as conn:
        conn.execute(
            text("CREATE TABLE IF NOT EXISTS readings (id INTEGER, tag TEXT, ts TEXT, v REAL)")
        )
        conn.execute(
            text("INSERT INTO readings VALUES (:i, 'p1', :t, :v)"),
            [{"i": i, "t": f"2024-02-01T{i:02d}:00:00+00:00", "v": i / 2} for i in ids],
        )
    eng.dispose()
    return url


def _sources_file(tmp_path: Path, url: str) -> Path:
    drop = tmp_path / "incoming"
    drop.mkdir()
    (drop / "a.csv").write_text("series_id,ts,value\nf1,2024-01-01T00:00:00Z,1\nf1,bad,2\n")
    path = tmp_path / "sources.yaml"
    path.write_text(
        f"""
sources:
  - name: drop
    type: files
    path: {drop}
    declare: {{kind: sensor, freq: h}}
  - name: historian
    type: sql
    url: {url}
    table: readings
    ts_column: ts
    value_column: v
    series_column: tag
    series_id: "hist-{{series}}"
    watermark_column: id
    declare: {{kind: sensor, freq: h}}
  - name: plant
    type: mqtt
    topic: never/used
"""
    )
    return path


def _artifact_rows() -> list[dict[str, object]]:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        arts = [a for a in client.read_artifacts() if a.key == "ingest-batches"]
    latest = max(arts, key=lambda a: a.created)  # type: ignore[arg-type, return-value]
    data = latest.data
    return json.loads(data) if isinstance(data, str) else data  # type: ignore[return-value]


def _marks() -> dict[str, object]:
    out = runner.invoke(app, ["ingest", "watermarks", "--json"]).output
    return {m["source"]: m["watermark"] for m in map(json.loads, out.splitlines())}


def test_ingest_run_loads_each_source_and_the_artifact_lists_them(
    service_env: dict[str, str], tmp_path: Path
) -> None:
    config = _sources_file(tmp_path, _upstream(tmp_path, range(0, 12)))
    result = runner.invoke(
        app, ["ingest", "run", "--config", str(config), "-s", "drop", "-s", "historian"]
    )
    assert result.exit_code == 0, result.output
    assert "rejected" in result.output and "unparseable timestamp 'bad'" in result.output
    rows = _artifact_rows()
    assert [(r["source_name"], r["source_type"], r["received"], r["rejected"]) for r in rows] == [
        ("drop", "files", 2, 1),
        ("historian", "sql", 12, 0),
    ]
    engine = make_engine(service_env["SEQCAST_DATABASE_URL"])
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM observations")).scalar_one() == 13

        _upstream(tmp_path, range(12, 15))
        rerun = runner.invoke(
            app, ["ingest", "run", "-c", str(config), "-s", "drop", "-s", "historian"]
        )
        assert rerun.exit_code == 0, rerun.output
        rows = _artifact_rows()
        assert [(r["source_name"], r["inserted"], r["already_loaded"]) for r in rows] == [
            ("drop", 1, True),  # the earlier batch's counts: nothing was loaded again
            ("historian", 3, False),
        ]
        assert _marks()["historian"] == {"type": "int", "value": 14}
        assert "historian" in runner.invoke(app, ["ingest", "watermarks"]).output

        back = runner.invoke(
            app,
            [
                "ingest",
                "backfill",
                "historian",
                "-c",
                str(config),
                "--start",
                "2024-02-01T03:00",
                "--end",
                "2024-02-01T05:00",
            ],
        )
        assert back.exit_code == 0, back.output
        rows = _artifact_rows()
        assert [(r["received"], r["inserted"], r["updated"]) for r in rows] == [(2, 0, 0)]
        assert _marks()["historian"] == {"type": "int", "value": 14}  # did not move
        with engine.connect() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM observations")).scalar_one() == 16
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ingest", "run", "--config", "missing.yaml"], "missing.yaml: no such project file"),
        (["ingest", "run", "-c", "{config}", "-s", "nope"], "unknown source(s) ['nope']"),
        (
            [
                "ingest",
                "backfill",
                "plant",
                "-c",
                "{config}",
                "--start",
                "2024-01-01",
                "--end",
                "2024-02-01",
            ],
            "cannot replay",
        ),
        (
            [
                "ingest",
                "backfill",
                "historian",
                "-c",
                "{config}",
                "--start",
                "2024-02-01",
                "--end",
                "2024-01-01",
            ],
            "start must be before end",
        ),
        (["ingest", "mqtt", "-c", "{config}", "-s", "drop"], "name one MQTT source"),
    ],
)
def test_cli_user_errors_are_one_line(
    service_env: dict[str, str], tmp_path: Path, args: list[str], message: str
) -> None:
    config = _sources_file(tmp_path, f"sqlite:///{tmp_path / 'h.db'}")
    result = runner.invoke(app, [a.replace("{config}", str(config)) for a in args])
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output


def test_a_failing_source_fails_the_run_after_the_others_loaded(
    service_env: dict[str, str], tmp_path: Path
) -> None:
    config = _sources_file(tmp_path, _upstream(tmp_path, range(0, 3)))
    broken = config.read_text().replace("table: readings", "table: no_such_table")
    config.write_text(broken)
    result = runner.invoke(
        app, ["ingest", "run", "-c", str(config), "-s", "drop", "-s", "historian"]
    )
    assert result.exit_code == 1
    assert "1 of 2 source(s) could not be loaded" in result.output
    assert "no_such_table" in result.output
    assert [r["source_name"] for r in _artifact_rows()] == ["drop"]
    engine = make_engine(service_env["SEQCAST_DATABASE_URL"])
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM observations")).scalar_one() == 1
    engine.dispose()
