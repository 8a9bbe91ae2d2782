"""One group's failure is not everyone's: the other groups train, are promoted and forecast;
the flows end Failed naming the group, and the CLI prints what worked and exits 1 (serial,
Dask fan-out and pipeline paths; a user's error and a bug)."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from prefect.client.schemas.objects import StateType
from typer.testing import CliRunner

import flows.series.group
import flows.series.params
from flows.cli import app
from flows.series.forecast import forecast
from flows.series.ingest import ingest
from flows.series.params import (
    ForecastParams,
    IngestParams,
    ModelGroup,
    PipelineParams,
    TrainParams,
)
from flows.series.pipeline import pipeline
from flows.series.results import GroupsFailed, PipelineSummary, TrainingSummary
from flows.series.train import train_forecasters
from tests.support.groups import tiny_groups, write_project

pytestmark = pytest.mark.slow
NO_DATA = "group 'weather': no active series with observations"


def three_groups() -> list[ModelGroup]:
    """glucose and prices, with a group of a kind nothing was ingested for between them."""
    glucose, prices = tiny_groups()
    weather = prices.model_copy(update={"name": "weather", "series_kind": "weather"})
    return [glucose, weather, prices]


def failure_of(exc: BaseException) -> GroupsFailed:
    assert isinstance(exc, GroupsFailed), exc
    return exc


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_group_without_data_fails_alone(
    service_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ingest(IngestParams(bundled=["glucose", "stocks"]))
    project = write_project(tmp_path / "seqcast.yaml", three_groups())
    monkeypatch.setenv("SEQCAST_CONFIG", str(project))
    runner = CliRunner()

    trained = runner.invoke(app, ["train"])
    assert trained.exit_code == 1, trained.output
    assert f"failed: group weather: {NO_DATA}" in trained.output
    table = [line for line in trained.output.splitlines() if line.count("│") >= 8]
    assert {line.split("│")[1].strip() for line in table} == {"glucose", "prices"}
    assert "Traceback" not in trained.output
    client = MlflowClient()
    for name in ("seqcast-glucose", "seqcast-prices"):
        champion = client.get_model_version_by_alias(name, "champion")
        assert champion.tags["promotion"] == "promoted"
    assert client.search_registered_models("name = 'seqcast-weather'") == []

    # The weather group gets a champion (glucose's model) but still has no series to forecast.
    glucose = client.get_model_version_by_alias("seqcast-glucose", "champion")
    client.create_registered_model("seqcast-weather")
    copy = client.create_model_version("seqcast-weather", glucose.source, glucose.run_id)
    client.set_registered_model_alias("seqcast-weather", "champion", copy.version)

    state = forecast(ForecastParams(groups=three_groups()), return_state=True)
    assert state.type == StateType.FAILED
    assert f"1 group(s) failed: weather ({NO_DATA}" in str(state.message)
    summary = failure_of(state.result(raise_on_failure=False)).summary
    assert [w.group for w in summary.written] == ["glucose", "prices"]
    assert [f.group for f in summary.failed] == ["weather"]

    forecasted = runner.invoke(app, ["forecast"])
    assert forecasted.exit_code == 1, forecasted.output
    assert f"failed: group weather: {NO_DATA}" in forecasted.output
    assert "seqcast-glucose v" in forecasted.output and "seqcast-prices v" in forecasted.output


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_fan_out_and_pipeline_keep_the_groups_that_work(
    service_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest(IngestParams(bundled=["stocks"]))
    prices = tiny_groups(cells=["lstm"], max_epochs=1)[1]
    weather = prices.model_copy(update={"name": "weather", "series_kind": "weather"})

    state = train_forecasters(
        TrainParams(groups=[weather, prices], dask_address="local"), return_state=True
    )
    assert state.type == StateType.FAILED and "weather" in str(state.message)
    fanned = failure_of(state.result(raise_on_failure=False)).summary
    assert isinstance(fanned, TrainingSummary)
    assert [g.group for g in fanned.trained] == ["prices"]
    [failed] = fanned.failed
    assert (failed.group, failed.error, failed.user_error) == ("weather", "SeqcastError", True)
    assert failed.reason.startswith(NO_DATA)

    # A bug in one group (not a user's error) is a failure with its type, not a silent skip.
    buggy = prices.model_copy(update={"name": "buggy"})
    read = flows.series.group.read_group_data

    def read_or_break(group: ModelGroup) -> object:
        if group.name == "buggy":
            raise KeyError("ts")
        return read(group)

    monkeypatch.setattr(flows.series.group, "read_group_data", read_or_break)
    state = pipeline(
        PipelineParams(groups=[buggy, weather, prices], retrain_after_hours=0), return_state=True
    )
    assert state.type == StateType.FAILED
    summary = failure_of(state.result(raise_on_failure=False)).summary
    assert isinstance(summary, PipelineSummary)
    assert [(f.group, f.error) for f in summary.train.failed] == [
        ("buggy", "KeyError"),
        ("weather", "SeqcastError"),
    ]
    assert summary.train.failed[0].reason == "KeyError: 'ts'"
    assert [g.group for g in summary.train.trained] == ["prices"]
    # Forecasting went on: no champion for the two failed groups, prices' (if any) forecast.
    assert [o.group for o in summary.forecast.outcomes] == ["buggy", "weather", "prices"]
    assert "buggy (KeyError: 'ts')" in str(state.message)
