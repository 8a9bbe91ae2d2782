"""prefect.yaml declares every flow with its schedule; `seqcast serve` builds them all."""

from __future__ import annotations

import yaml

from flows.serving import deployments_from_yaml
from tests.support import REPO

ROOT = REPO


def test_prefect_yaml_deployments_build_with_their_schedules() -> None:
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    assert all(d["work_pool"]["name"] == "seqcast" for d in spec["deployments"])
    built = {d.name: d for d in deployments_from_yaml(ROOT / "prefect.yaml")}
    assert set(built) == {
        "ingest", "train-forecasters", "forecast", "pipeline", "train-text", "score-text"
    }  # fmt: skip
    crons = {name: [s.schedule.cron for s in d.schedules or []] for name, d in built.items()}
    assert crons == {
        "ingest": ["*/15 * * * *"],
        "train-forecasters": ["0 2 * * *"],
        "forecast": ["5 * * * *"],
        "pipeline": [],  # declared inactive: the three above cover it
        "train-text": ["30 2 * * *"],
        "score-text": ["20 * * * *"],
    }
    assert built["train-forecasters"].concurrency_limit == 1
    assert built["ingest"].parameters == {
        "params": {"bundled": ["glucose", "stocks"], "config": "config/sources.example.yaml"}
    }
