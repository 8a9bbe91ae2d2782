"""prefect.yaml declares every flow with its schedule; `seqcast serve` builds them all."""

from __future__ import annotations

from pathlib import Path

import yaml

from flows.series.params import TrainParams
from flows.serving import deployments_from_yaml
from tests.support import REPO

ROOT = REPO
DRIFT_CHECK = {
    "config": "seqcast.yaml", "shared_schedule_only": True, "drifted_only": True,
    "drift_ratio": 2.0, "drift_min_actuals": 12,
}  # fmt: skip


def test_prefect_yaml_deployments_build_with_their_schedules() -> None:
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    assert all(d["work_pool"]["name"] == "seqcast" for d in spec["deployments"])
    built = {d.name: d for d in deployments_from_yaml(ROOT / "prefect.yaml")}
    assert set(built) == {
        "ingest", "train-forecasters", "forecast", "pipeline", "ingest-text", "train-text",
        "score-text",
    }  # fmt: skip
    crons = {name: [s.schedule.cron for s in d.schedules or []] for name, d in built.items()}
    assert crons == {
        "ingest": ["*/15 * * * *"],
        "train-forecasters": ["0 2 * * *", "40 * * * *"],
        "forecast": ["5 * * * *"],
        "pipeline": [],  # declared inactive: the three above cover it
        "ingest-text": ["10,25,40,55 * * * *"],
        "train-text": ["30 2 * * *"],
        "score-text": ["20 * * * *"],
    }
    assert built["train-forecasters"].concurrency_limit == 1
    # Every deployment passes the project file's path, never a copy of what it says.
    assert built["ingest"].parameters == {"params": {"config": "seqcast.yaml"}}
    assert built["train-forecasters"].parameters == {
        "params": {"config": "seqcast.yaml", "shared_schedule_only": True}
    }
    # The hourly schedule is the drift check: its own parameters replace the deployment's.
    daily, hourly = built["train-forecasters"].schedules or []
    assert daily.parameters == {}
    assert hourly.parameters == {"params": DRIFT_CHECK}
    TrainParams(**hourly.parameters["params"])  # valid flow parameters


def test_groups_with_their_own_schedule_get_their_own_deployments(tmp_path: Path) -> None:
    project = tmp_path / "seqcast.yaml"
    project.write_text(
        "groups:\n"
        "  - {name: plant, select: {kind: sensor}, horizon: 24,\n"
        "     schedule: {retrain: '0 4 * * 1', forecast: '*/30 * * * *'}}\n"
        "  - {name: prices, select: {kind: price}, horizon: 5}\n"
    )
    built = {d.name: d for d in deployments_from_yaml(ROOT / "prefect.yaml", project)}
    crons = {name: [s.schedule.cron for s in d.schedules or []] for name, d in built.items()}
    assert crons["train-forecasters-plant"] == ["0 4 * * 1", "40 * * * *"]
    assert crons["forecast-plant"] == ["*/30 * * * *"]
    assert crons["train-forecasters"] == ["0 2 * * *", "40 * * * *"]  # the shared crons
    assert built["train-forecasters-plant"].parameters == {
        "params": {"config": "seqcast.yaml", "shared_schedule_only": False, "only": ["plant"]}
    }
    # The plant's drift check checks the plant alone; the shared one leaves it out.
    plant_drift = (built["train-forecasters-plant"].schedules or [])[1].parameters["params"]
    assert plant_drift == {**DRIFT_CHECK, "only": ["plant"], "shared_schedule_only": False}
    shared_drift = (built["train-forecasters"].schedules or [])[1].parameters["params"]
    assert shared_drift == DRIFT_CHECK
    assert "forecast-prices" not in built and "train-forecasters-prices" not in built
