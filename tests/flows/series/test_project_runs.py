"""The deployments pass the project file's path: an edit to a group applies at the next run."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from flows.series.ingest import ingest
from flows.series.params import IngestParams, TrainParams
from flows.series.train import train_forecasters
from flows.serving import deployments_from_yaml
from tests.support import REPO
from tests.support.groups import tiny_groups, write_project

pytestmark = pytest.mark.slow


def horizons(name: str) -> list[str]:
    client = MlflowClient()
    versions = client.search_model_versions(f"name = '{name}'")
    return sorted(client.get_run(v.run_id).data.params["model.horizon"] for v in versions)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_edited_horizon_applies_at_the_next_scheduled_run(
    service_env: dict[str, str], tmp_path: Path
) -> None:
    prices = tiny_groups(cells=["gru"])[1]
    project = write_project(tmp_path / "seqcast.yaml", [prices])
    ingest(IngestParams(bundled=["stocks"]))
    # The parameters the scheduled train-forecasters deployment runs with, as served.
    deployment = next(
        d for d in deployments_from_yaml(REPO / "prefect.yaml", project)
        if d.name == "train-forecasters"
    )  # fmt: skip
    params = deployment.parameters["params"]
    assert params["config"] == "seqcast.yaml"  # relative: the worker's working directory

    train_forecasters(TrainParams(**params))
    assert horizons("seqcast-prices") == ["5"]
    write_project(project, [prices.model_copy(update={"horizon": 3})])
    train_forecasters(TrainParams(**params))  # the same deployment parameters, unedited
    assert horizons("seqcast-prices") == ["3", "5"]
