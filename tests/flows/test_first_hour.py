"""A stranger's first hour with their own CSV files, through the CLI only: db upgrade, ingest,
init, config show, train, forecast, status, on real series of three frequencies the demo
does not have (30-minute sea temperature, hourly M4 series, monthly unemployment)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from sqlalchemy import text
from typer.testing import CliRunner

from db import make_engine
from flows.cli import app
from tests.support import SHARED_DATA, real_series

pytestmark = pytest.mark.slow
M4 = SHARED_DATA / "m4" / "Hourly-train.csv"
runner = CliRunner()


def seqcast(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, f"seqcast {' '.join(args)}:\n{result.output}"
    assert "Traceback" not in result.output
    return result.output


@pytest.mark.skipif(not M4.is_file(), reason=f"needs {M4} (../shared/data)")
def test_the_first_hour_on_three_frequencies(
    service_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SEQCAST_CONFIG", raising=False)
    files = {
        "sea.csv": (real_series.sea_temperature_30min(last=8000), "sensor", "30min"),
        "m4.csv": (real_series.m4_hourly(M4), "load", "h"),
        "jobs.csv": (real_series.unemployment_monthly(), "rate", "MS"),
    }
    seqcast("db", "upgrade")
    for name, (frame, kind, freq) in files.items():
        out = seqcast("ingest", str(real_series.write_csv(frame, tmp_path / name)),
                      "--kind", kind, "--freq", freq)  # fmt: skip
        assert name in out
    # No project file yet: commands that need groups say what to do.
    assert "seqcast init" in seqcast("train", code=1)

    seqcast("init")
    project = yaml.safe_load((tmp_path / "seqcast.yaml").read_text())
    groups = {g["name"]: g for g in project["groups"]}
    assert groups == {
        "load-h": {"name": "load-h", "select": {"kind": "load", "freq": "h"}, "horizon": 48},
        "rate-ms": {"name": "rate-ms", "select": {"kind": "rate", "freq": "MS"}, "horizon": 18},
        "sensor-30min": {
            "name": "sensor-30min", "select": {"kind": "sensor", "freq": "30min"}, "horizon": 48
        },
    }  # fmt: skip
    shown = seqcast("config", "show")
    seasons = re.findall(r"season_length\s+│\s+(\d+)\s+│\s+derived", shown)
    windows = re.findall(r"│ window\s+│\s+(\d+)\s+│\s+derived", shown)
    # In the file's order (load-h, rate-ms, sensor-30min): a day of hours with a week as the
    # second season, a year of months, a day of half hours; windows of 7 seasons.
    assert seasons == ["24", "12", "48"], shown
    assert windows == ["168", "84", "336"], shown
    # One edit a user makes: one cell per group instead of two, to halve the training time.
    text_ = (tmp_path / "seqcast.yaml").read_text()
    (tmp_path / "seqcast.yaml").write_text(
        re.sub(r"(\n    horizon: \d+)", r"\1\n    settings: {cells: [gru]}", text_)
    )
    # A series that arrives later and that no group selects is listed, never forecast.
    weather = real_series.write_csv(real_series.lincoln_daily(), tmp_path / "weather.csv")
    seqcast("ingest", str(weather), "--kind", "weather", "--freq", "D")

    trained = seqcast("train")
    assert "models vs seasonal naive" in trained and "derived:" in trained
    forecast = seqcast("forecast")
    status = seqcast("status")
    assert "Series in no group: never trained or forecast" in status
    assert "lincoln-tmax" in status and "lincoln-tmin" in status

    engine = make_engine(service_env["SEQCAST_DATABASE_URL"])
    with engine.connect() as conn:
        forecasts = dict(
            conn.execute(
                text("SELECT series_id, COUNT(*) FROM latest_forecasts GROUP BY series_id")
            ).all()
        )
        windows = dict(
            conn.execute(text("SELECT model_name, COUNT(*) FROM forecast_runs GROUP BY 1")).all()
        )
    engine.dispose()
    configured = {"sst-buoy": 48, "us-unemployment": 18, "m4-H1": 48, "m4-H2": 48, "m4-H3": 48}
    assert forecasts == configured, forecast
    assert set(windows) == {"seqcast-load-h", "seqcast-rate-ms", "seqcast-sensor-30min"}
