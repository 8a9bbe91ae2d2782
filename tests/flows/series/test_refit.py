"""Champions refit on the newest data (``refit: true``), through the train and forecast flows on
the real glucose data and a real MLflow registry: the champion is the selected recipe trained
through the last observation, carries the selected run's holdout evidence and link, forecasts,
and is scored as its selected version at the next retrain; a refit that diverges leaves the
selected version champion with the reason on it."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

import forecasting.refit
from flows.series.data import read_group_data
from flows.series.forecast import forecast
from flows.series.ingest import ingest
from flows.series.params import ForecastParams, IngestParams, TrainParams
from flows.series.refit import FINETUNE_EPOCHS, REFIT_MODE
from flows.series.results import GroupTraining
from flows.series.train import train_forecasters
from flows.tracking.registry import load_forecaster
from forecasting.panel import build_panel
from forecasting.spec import ForecasterSpec
from tests.flows.series.test_lifecycle import NAME, champion, group, tags

pytestmark = pytest.mark.slow


def train(**overrides: Any) -> GroupTraining:
    return train_forecasters(TrainParams(groups=[group(refit=True, **overrides)])).group("glucose")


def refit_runs(client: MlflowClient, selected_run: str) -> list[Any]:
    experiment = client.get_run(selected_run).info.experiment_id
    return client.search_runs([experiment], f"tags.`refit.of_run` = '{selected_run}'")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_champion_is_the_selected_recipe_refit_through_the_last_observation(
    service_env: dict[str, str],
) -> None:
    ingest(IngestParams(bundled=["glucose"]))
    client = MlflowClient()
    trained = train()
    d, selected = trained.decision, trained.candidate("lstm")
    assert d.promoted and d.version == selected.version, d
    assert d.refit_version is not None and d.refit_failure is None, d
    assert champion(client) == d.refit_version != selected.version
    assert d.champion_after == d.refit_version
    assert f"refit on every point as v{d.refit_version}" in d.reason

    # The holdout evidence and the link, on the version and on its run.
    refit_tags, selected_tags = tags(client, d.refit_version), tags(client, selected.version)
    assert refit_tags["refit.of_run"] == selected.run_id
    assert refit_tags["refit.of_version"] == selected.version
    assert refit_tags["backtest_mase"] == selected_tags["backtest_mase"]
    assert float(refit_tags["backtest_mase"]) == pytest.approx(
        selected.metrics["backtest_mase"], abs=1e-4
    )
    assert refit_tags["promotion"] == "promoted"
    assert refit_tags["promotion_holdout_end"] == d.holdout_end
    assert selected_tags["refit"] == f"v{d.refit_version}"
    (run,) = refit_runs(client, selected.run_id)
    assert client.get_model_version(NAME, d.refit_version).run_id == run.info.run_id
    assert run.data.params["refit.of_version"] == selected.version
    best_epoch = int(client.get_run(selected.run_id).data.metrics["best_epoch"])
    assert run.data.params["refit.selected_best_epoch"] == str(best_epoch)
    epochs = best_epoch if REFIT_MODE == "scratch" else FINETUNE_EPOCHS
    assert run.data.params["train.max_epochs"] == str(epochs)
    assert run.data.metrics["epochs_run"] == epochs
    if REFIT_MODE == "finetune":
        assert run.data.tags["refit.note"].startswith("warm start"), run.data.tags
    for key in ("backtest_mase", "backtest_smape", "seasonal_naive_mase"):
        assert run.data.metrics[key] == pytest.approx(selected.metrics[key])

    # Trained through the last observation: its scaler is fitted on every point of the data,
    # the selected model's on the part before validation and test.
    g = group(refit=True)
    data = read_group_data(g)
    assert pd.Timestamp(refit_tags["refit.data_end"]) == data.frame["ts"].max()
    values = build_panel(data.frame, data.freqs, g.spec("lstm").panel).series_values(0)
    assert int(refit_tags["refit.points"]) == len(values)
    stats = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/data/training_data.json")
    assert stats["points"] == len(values) and stats["data_end"] == refit_tags["refit.data_end"]
    refitted = load_forecaster(NAME, d.refit_version)
    unrefit = load_forecaster(NAME, selected.version)
    assert refitted.scaler is not None and unrefit.scaler is not None
    held_out = g.val_size + g.test_size
    assert refitted.scaler.mean[0] == pytest.approx(float(np.nanmean(values)), rel=1e-5)
    assert unrefit.scaler.mean[0] == pytest.approx(float(np.nanmean(values[:-held_out])), 1e-5)

    # It is what forecasts.
    written = forecast(ForecastParams(groups=[g])).run("glucose")
    assert written.version == d.refit_version and written.rows > 0, written

    # The next retrain scores it as its selected version: the refit trained on that holdout.
    again = train(seed=1)
    assert again.decision.champion_version == d.refit_version
    if again.decision.champion_score is not None:
        assert f"scored as v{selected.version}" in again.decision.reason, again.decision


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_refit_that_diverges_leaves_the_selected_version_champion(
    service_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = forecasting.refit.refit_spec

    def exploding(spec: ForecasterSpec, *args: Any, **kwargs: Any) -> ForecasterSpec:
        # A learning rate no training survives: the loop's own divergence check stops it.
        out = real(spec, *args, **kwargs)
        return replace(out, train=replace(out.train, learning_rate=1e30))

    monkeypatch.setattr(forecasting.refit, "refit_spec", exploding)
    ingest(IngestParams(bundled=["glucose"]))
    client = MlflowClient()
    trained = train()
    d, selected = trained.decision, trained.candidate("lstm")
    assert d.promoted and d.refit_version is None, d
    assert d.refit_failure is not None and d.refit_failure.startswith("refit diverged"), d
    assert "non-finite" in d.refit_failure
    assert champion(client) == selected.version == d.champion_after
    assert f"refit failed ({d.refit_failure})" in d.reason
    selected_tags = tags(client, selected.version)
    assert selected_tags["refit"] == "failed"
    assert selected_tags["refit_failure"] == d.refit_failure
    assert [str(v.version) for v in client.search_model_versions(f"name = '{NAME}'")] == [
        selected.version
    ]
    (run,) = refit_runs(client, selected.run_id)
    assert run.info.status == "FAILED" and run.data.tags["failure"] == d.refit_failure
    written = forecast(ForecastParams(groups=[group(refit=True)])).run("glucose")
    assert written.version == selected.version and written.rows > 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_ensemble_champion_is_not_refit_and_says_why(
    service_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``ensemble: median`` and ``refit: true``, a promoted ensemble stays champion as
    selected: no refit run, the reason on its version and in the decision."""
    import flows.series.group
    import flows.series.promote
    from flows.series.ensemble import ENSEMBLE_CELL

    def the_ensemble(candidates: Any) -> Any:
        return next(c for c in candidates if c.cell == ENSEMBLE_CELL)

    for module in (flows.series.group, flows.series.promote):  # the median chosen, whatever
        monkeypatch.setattr(module, "best_candidate", the_ensemble)  # the scores
    ingest(IngestParams(bundled=["glucose"]))
    client = MlflowClient()
    trained = train(cells=["lstm", "gru"], ensemble="median")
    d = trained.decision
    assert d.candidate == ENSEMBLE_CELL and d.promoted, d
    assert d.refit_version is None and "ensemble champion is not refit" in str(d.refit_failure)
    assert champion(client) == d.version
    assert tags(client, d.version)["refit"] == "failed"
    assert "ensemble champion is not refit" in d.reason
    assert not refit_runs(client, trained.candidate(ENSEMBLE_CELL).run_id)
