"""The ingest flow (``seqcast ingest run``) loads a project file's covariate sources beside its
observation sources: one run, one artifact listing each batch, reruns load only what is new."""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import text
from typer.testing import CliRunner

from db import make_engine
from flows.cli import app

runner = CliRunner()


def _station_db(tmp_path: Path, ids: range) -> str:
    url = f"sqlite:///{tmp_path / 'stations.db'}"
    eng = sa.create_engine(url)
    with eng.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS temps (id INTEGER, ts TEXT, v TEXT)"))
        conn.execute(
            text("INSERT INTO temps VALUES (:i, :t, :v)"),
            [{"i": i, "t": f"2024-02-01T{i:02d}:00:00+00:00", "v": str(i / 2)} for i in ids],
        )
    eng.dispose()
    return url


def _project(tmp_path: Path, url: str) -> Path:
    drop, weather = tmp_path / "incoming", tmp_path / "weather"
    drop.mkdir()
    weather.mkdir()
    (drop / "a.csv").write_text("series_id,ts,value\nf1,2024-02-01T00:00:00Z,1\n")
    (weather / "w.csv").write_text(
        "series_id,ts,value\nf1,2024-02-01T00:00:00Z,3.5\nf1,2024-02-01T01:00:00Z,warm\n"
    )
    path = tmp_path / "seqcast.yaml"
    path.write_text(
        f"""
sources:
  - name: drop
    type: files
    path: {drop}
    declare: {{kind: sensor, freq: h}}
  - name: weather-files
    type: files
    path: {weather}
    covariate: {{kind: known_future, name: temperature}}
  - name: station
    type: sql
    url: {url}
    table: temps
    ts_column: ts
    value_column: v
    series_id: f1
    watermark_column: id
    covariate: {{kind: past_only, name: observed_temperature}}
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


def test_ingest_run_loads_covariate_sources_beside_observations(
    service_env: dict[str, str], tmp_path: Path
) -> None:
    config = _project(tmp_path, _station_db(tmp_path, range(0, 4)))
    result = runner.invoke(app, ["ingest", "run", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "value 'warm' is not a finite number" in result.output
    rows = _artifact_rows()
    assert [(r["source_name"], r["received"], r["rejected"], r["inserted"]) for r in rows] == [
        ("drop", 1, 0, 1),
        ("weather-files", 2, 1, 1),
        ("station", 4, 0, 4),
    ]
    assert "(covariates: past_only, series scope" in str(rows[2]["source"])
    engine = make_engine(service_env["SEQCAST_DATABASE_URL"])
    try:
        count = "SELECT name, COUNT(*) FROM covariates GROUP BY name ORDER BY name"
        with engine.connect() as conn:
            assert conn.execute(text(count)).all() == [
                ("observed_temperature", 4),
                ("temperature", 1),
            ]
        _station_db(tmp_path, range(4, 6))
        rerun = runner.invoke(app, ["ingest", "run", "-c", str(config)])
        assert rerun.exit_code == 0, rerun.output
        rows = _artifact_rows()
        assert [(r["source_name"], r["inserted"], r["already_loaded"]) for r in rows] == [
            ("drop", 1, True),
            ("weather-files", 1, True),
            ("station", 2, False),
        ]
        with engine.connect() as conn:
            assert conn.execute(text(count)).all()[0] == ("observed_temperature", 6)
            assert conn.execute(text("SELECT COUNT(*) FROM observations")).scalar_one() == 1
        marks = runner.invoke(app, ["ingest", "watermarks", "--json"]).output
        station = [json.loads(m) for m in marks.splitlines() if '"station"' in m]
        assert station[0]["watermark"] == {"type": "int", "value": 5}
    finally:
        engine.dispose()
