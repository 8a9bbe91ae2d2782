"""Ensemble champions on the real stock prices and a real MLflow registry: ``ensemble: median``
registers one model version linked to its members' runs, scored on its own median forecasts;
it competes in selection, forecasts (flow, pyfunc and ``mlflow models serve``) as the members'
median with its own version recorded, and is challenged like any champion."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient
from pydantic import ValidationError
from sqlalchemy import text

from db import make_engine
from db.observations import read_observations
from flows.project import GroupConfig
from flows.series.candidates import Candidate
from flows.series.forecast import forecast
from flows.series.ingest import ingest
from flows.series.params import ForecastParams, IngestParams, ModelGroup, TrainParams
from flows.series.promote import best_candidate, challenger_of
from flows.series.train import train_forecasters
from flows.tracking.registry import load_forecaster, load_model
from forecasting.ensemble import EnsembleForecaster
from forecasting.forecaster import GlobalForecaster
from tests.support.model_serving import post_json, served_model
from tests.support.trained_store import tiny_prices

KEY = ["series_id", "step"]


def prices(**overrides: Any) -> ModelGroup:
    return ModelGroup(**(tiny_prices(("lstm", "gru")).model_dump() | overrides))


def test_ensemble_setting_is_off_by_default_and_needs_two_cells() -> None:
    assert prices().ensemble == "off"
    assert prices(ensemble="median").ensemble == "median"
    with pytest.raises(ValidationError, match="needs at least two cells"):
        prices(ensemble="median", cells=["gru"])
    with pytest.raises(ValidationError):
        prices(ensemble="mean")
    group = GroupConfig.model_validate(
        {"name": "p", "select": {"kind": "price"}, "horizon": 5, "settings": {"ensemble": "median"}}
    )
    assert group.settings == {"ensemble": "median"}


def test_an_ensemble_that_only_ties_its_best_member_is_not_the_challenger(
    stocks: pd.DataFrame,
) -> None:
    torch.set_num_threads(1)
    group = prices(ensemble="median")
    frame = stocks[stocks["series_id"] != "stock-FB"]
    freqs = dict.fromkeys(frame["series_id"].unique(), "B")
    fitted = {}
    for cell in group.cells:
        fitted[cell] = GlobalForecaster(group.spec(cell))
        fitted[cell].fit(frame, freqs)
    singles = [Candidate(c, f"run-{c}", str(k + 1), f.backtest(), f)
               for k, (c, f) in enumerate(fitted.items())]  # fmt: skip
    best = min(singles, key=lambda c: c.score)
    # The median of (best, best, other) is the best member's forecast: the same score.
    other = next(f for cell, f in fitted.items() if cell != best.cell)
    tie = EnsembleForecaster([fitted[best.cell], fitted[best.cell], other])
    tied = Candidate("ensemble", "run-ensemble", "3", tie.backtest(), tie)
    assert tied.score == best.score
    assert best_candidate([*singles, tied]) is best
    # The median of the two is a score of its own, and it is chosen only if it is lower.
    both = EnsembleForecaster(list(fitted.values()))
    combined = Candidate("ensemble", "run-ensemble", "3", both.backtest(), both)
    assert combined.score not in (singles[0].score, singles[1].score)
    chosen = best_candidate([*singles, combined])
    assert chosen is (combined if combined.score < best.score else best)
    assert challenger_of(chosen).version == chosen.version


def _flow_rows(url: str, run_id: str) -> tuple[str, dict[str, Any], pd.DataFrame]:
    engine = make_engine(url)
    with engine.connect() as conn:
        version, details = conn.execute(
            text("SELECT model_version, details FROM forecast_runs WHERE run_id = :r"),
            {"r": run_id},
        ).one()
        rows = pd.read_sql(
            text("SELECT series_id, ts, step, yhat, yhat_lower, yhat_upper FROM forecasts "
                 "WHERE run_id = :r"),
            conn,
            params={"r": run_id},
        )  # fmt: skip
    engine.dispose()
    details = json.loads(details) if isinstance(details, str) else details
    return str(version), details, rows.sort_values(KEY).reset_index(drop=True)


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_median_ensemble_is_registered_competes_forecasts_and_is_challenged(
    service_env: dict[str, str], tmp_path: Path
) -> None:
    ingest(IngestParams(bundled=["stocks"]))
    group = prices(ensemble="median")
    name, client = group.registered_model, MlflowClient()
    trained = train_forecasters(TrainParams(groups=[group])).group("prices")
    assert [c.cell for c in trained.candidates] == ["lstm", "gru", "ensemble"]
    lstm, gru, ens = trained.candidates

    # One registered version, linked to its members' runs and versions (run and version).
    assert ens.version not in (lstm.version, gru.version)
    links = {
        "ensemble.combine": "median",
        "ensemble.members": f"{lstm.run_id},{gru.run_id}",
        "ensemble.member_versions": f"{lstm.version},{gru.version}",
        "ensemble.member_cells": "lstm,gru",
    }
    version_tags = client.get_model_version(name, ens.version).tags
    run = client.get_run(ens.run_id)
    for key, value in links.items():
        assert version_tags[key] == value and run.data.params[key] == value
    assert run.data.tags["mlflow.parentRunId"] == trained.parent_run_id
    for member in (lstm, gru):
        assert client.get_model_version(name, member.version).tags["ensemble.member_of"] == (
            ens.version
        )
    # Its metrics are its own backtest's, on the members' windows and baselines.
    assert ens.metrics["backtest_windows"] == lstm.metrics["backtest_windows"] > 0
    assert ens.metrics["seasonal_naive_mase"] == pytest.approx(lstm.metrics["seasonal_naive_mase"])
    assert ens.metrics["backtest_mase"] not in (
        lstm.metrics["backtest_mase"],
        gru.metrics["backtest_mase"],
    )
    assert run.data.metrics["backtest_mase"] == pytest.approx(ens.metrics["backtest_mase"])
    # Selection: the lowest backtest MASE is the challenger, the ensemble like the others.
    scores = [c.metrics["backtest_mase"] for c in trained.candidates]
    best = trained.candidates[int(np.argmin(scores))]
    assert (trained.decision.candidate, trained.decision.version) == (best.cell, best.version)

    # Champion (the tiny members may not beat seasonal naive, so the alias is set here).
    client.set_registered_model_alias(name, "champion", ens.version)
    model = load_model(name, ens.version)
    assert isinstance(model, EnsembleForecaster)
    assert model.labels == [f"lstm v{lstm.version}", f"gru v{gru.version}"]
    with pytest.raises(Exception, match="is an ensemble"):
        load_forecaster(name, ens.version)

    written = forecast(ForecastParams(groups=[group])).run("prices")
    assert written.version == ens.version and written.mlflow_run_id == ens.run_id
    version, details, rows = _flow_rows(service_env["SEQCAST_DATABASE_URL"], written.run_id)
    assert version == ens.version
    assert details["ensemble_members"] == model.labels
    # The rows are the median of the members' own forecasts of the same history.
    engine = make_engine(service_env["SEQCAST_DATABASE_URL"])
    history = read_observations(engine, sorted(rows["series_id"].unique()))
    engine.dispose()
    own = [
        load_forecaster(name, v).predict(history)[0].sort_values(KEY).reset_index(drop=True)
        for v in (lstm.version, gru.version)
    ]
    assert len(rows) == len(own[0]) == 5 * group.horizon  # five tickers
    for column in ("yhat", "yhat_lower", "yhat_upper"):
        median = np.median(np.stack([o[column].to_numpy() for o in own]), axis=0)
        assert rows[column].to_numpy() == pytest.approx(median, abs=1e-5)
    assert not np.allclose(own[0]["yhat"], own[1]["yhat"])  # a real combination

    # The pyfunc model (what `mlflow models serve` loads) answers the same.
    window = model.spec.model.window
    last = history.groupby("series_id").tail(window)
    request = pd.DataFrame(
        {"series_id": last["series_id"], "ts": [t.isoformat() for t in last["ts"]],
         "value": last["value"]}
    )  # fmt: skip
    loaded = mlflow.pyfunc.load_model(f"models:/{name}@champion").predict(request)
    loaded = loaded.sort_values(KEY).reset_index(drop=True)
    assert loaded["yhat"].to_numpy() == pytest.approx(rows["yhat"].to_numpy(), abs=1e-5)
    body = {"dataframe_split": {"columns": list(request.columns), "data": request.values.tolist()}}
    with served_model(f"models:/{name}@champion", tmp_path) as url:
        status, answer = post_json(f"{url}/invocations", body)
    assert status == 200, answer
    served = pd.DataFrame(answer["predictions"]).sort_values(KEY).reset_index(drop=True)
    for column in ("yhat", "yhat_lower", "yhat_upper"):
        assert served[column].to_numpy() == pytest.approx(rows[column].to_numpy(), abs=1e-5)

    # A retrain warm-starts from the ensemble's member of its cell, and is scored against the
    # ensemble champion on the same holdout.
    retrain = prices(cells=["gru"], seed=1, warm_start=True)
    again = train_forecasters(TrainParams(groups=[retrain])).group("prices")
    warm = client.get_run(again.candidates[0].run_id).data.tags
    assert warm["warm_start"] == "true"
    assert (
        f"member gru v{gru.version} of the ensemble champion v{ens.version}"
        in (warm["warm_start_note"])
    )
    d = again.decision
    assert d.champion_version == ens.version and d.champion_problem is None, d
    assert d.champion_score is not None and math.isfinite(d.champion_score)
    assert d.champion_score == pytest.approx(ens.metrics["backtest_mase"], rel=1e-6)
    assert client.get_model_version(name, ens.version).tags["challenged_by"] == d.version
