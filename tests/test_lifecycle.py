"""Model lifecycle on the real glucose data and a real MLflow registry: champion/challenger
tags on both versions, the seasonal-naive bar, rollback (CLI), warm start, drift retrains."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sqlalchemy import text
from typer.testing import CliRunner

from db import make_engine
from flows.cli import app
from flows.forecast import forecast
from flows.ingest import ingest
from flows.params import ForecastParams, IngestParams, ModelGroup, TrainParams
from flows.pipeline import retrain_due
from flows.train import train_forecasters

pytestmark = pytest.mark.slow
NAME = "seqcast-glucose"


def group(**overrides: Any) -> ModelGroup:
    settings: dict[str, Any] = dict(
        name="glucose",
        series_kind="sensor",
        cells=["lstm"],
        window=24,
        horizon=6,
        season_length=288,
        hidden_size=8,
        num_layers=1,
        max_epochs=2,
        windows_per_epoch=512,
        batch_size=64,
        val_size=600,
        test_size=240,
    )
    return ModelGroup(**(settings | overrides))


def train(**overrides: Any) -> dict[str, Any]:
    return dict(train_forecasters(TrainParams(groups=[group(**overrides)]))["glucose"])


def tags(client: MlflowClient, version: str) -> dict[str, str]:
    return dict(client.get_model_version(NAME, version).tags)


def champion(client: MlflowClient) -> str:
    return str(client.get_model_version_by_alias(NAME, "champion").version)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_challenger_kept_promoted_and_rolled_back(service_env: dict[str, str]) -> None:
    ingest(IngestParams(bundled=["glucose"]))
    client = MlflowClient()

    # Worse than seasonal naive: never champion, not even the first one.
    hopeless = train(
        normalize="none", season_length=1, learning_rate=1e-6, max_epochs=1, windows_per_epoch=64
    )
    d = hopeless["decision"]
    assert not d["promoted"] and not d["beats_seasonal_naive"]
    assert d["challenger_score"] >= d["seasonal_naive_score"]
    assert "does not beat seasonal naive" in tags(client, "1")["promotion_reason"]
    assert tags(client, "1")["beats_seasonal_naive"] == "false"
    assert client.get_registered_model(NAME).aliases == {}

    first = train()  # v2: the first champion
    assert first["decision"]["promoted"], first["decision"]
    assert champion(client) == "2"
    assert "previous_champion" not in tags(client, "2")

    weak = train(learning_rate=1e-5, max_epochs=1, windows_per_epoch=64, seed=3)  # v3
    d = weak["decision"]
    assert not d["promoted"], d
    assert champion(client) == "2"
    challenger, kept = tags(client, "3"), tags(client, "2")
    assert challenger["promotion"] == "kept champion"
    assert kept["challenged_by"] == "3" and kept["challenge_result"] == "stayed champion"
    assert kept["challenge_reason"] == challenger["promotion_reason"]
    for t in (challenger, kept):  # the same holdout and scores on both versions
        assert t["promotion_holdout_end"] == d["holdout_end"]
        assert t["promotion_holdout_end"].startswith("2010-")
        assert float(t["promotion_challenger_score"]) == pytest.approx(d["challenger_score"], 1e-4)
    if d["beats_seasonal_naive"]:
        assert float(kept["promotion_champion_score"]) <= d["challenger_score"] + 1e-9

    strong = train(hidden_size=16, max_epochs=4, windows_per_epoch=2048)  # v4
    d = strong["decision"]
    assert d["promoted"], d
    assert d["challenger_score"] < d["champion_score"] < d["seasonal_naive_score"]
    assert champion(client) == "4"
    assert tags(client, "4")["previous_champion"] == "2"
    assert tags(client, "2")["challenge_result"] == "replaced by v4"

    runner = CliRunner()
    back = runner.invoke(app, ["model", "rollback", "glucose"])
    assert back.exit_code == 0, back.output
    assert "v4 -> v2" in back.output
    assert champion(client) == "2"
    assert tags(client, "4")["promotion"] == "rolled back"
    assert tags(client, "2")["restored_from"] == "4"

    again = runner.invoke(app, ["model", "rollback", NAME])  # v2 replaced nobody
    assert again.exit_code == 1
    assert "replaced no earlier champion" in again.output and "--to" in again.output
    forward = runner.invoke(app, ["model", "rollback", NAME, "--to", "4"])
    assert forward.exit_code == 0, forward.output
    assert champion(client) == "4"
    missing = runner.invoke(app, ["model", "rollback", "nosuch"])
    assert missing.exit_code == 1 and "no registered model 'nosuch'" in missing.output


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_warm_start_fine_tunes_from_the_champion(service_env: dict[str, str]) -> None:
    ingest(IngestParams(bundled=["glucose"]))
    client = MlflowClient()
    cold = train(max_epochs=3)
    warm = train(max_epochs=3, warm_start=True)
    other_cell = train(max_epochs=1, warm_start=True, cells=["gru"])

    def first_val_loss(summary: dict[str, Any], cell: str) -> float:
        run_id = summary["candidates"][cell]["run_id"]
        history = client.get_metric_history(run_id, "val_loss")
        return min(history, key=lambda m: m.step).value

    cold_loss, warm_loss = first_val_loss(cold, "lstm"), first_val_loss(warm, "lstm")
    print(f"first-epoch val_loss: cold {cold_loss:.4f}, warm {warm_loss:.4f}")
    assert warm_loss < 0.8 * cold_loss
    warm_run = client.get_run(warm["candidates"]["lstm"]["run_id"]).data.tags
    assert warm_run["warm_start"] == "true"
    assert warm_run["warm_start_note"].startswith("warm start")
    gru_run = client.get_run(other_cell["candidates"]["gru"]["run_id"]).data.tags
    assert gru_run["warm_start"] == "false"
    assert "is a lstm, not a gru" in gru_run["warm_start_note"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_drift_on_new_actuals_triggers_a_retrain(
    service_env: dict[str, str], glucose: pd.DataFrame, tmp_path: Path
) -> None:
    cut = glucose["ts"].max() - pd.Timedelta(days=2)
    old, new = glucose[glucose["ts"] <= cut], glucose[glucose["ts"] > cut]
    old.to_csv(tmp_path / "old.csv", index=False)
    new.to_csv(tmp_path / "new.csv", index=False)
    ingest(IngestParams(paths=[str(tmp_path / "old.csv")], kind="sensor", freq="5min"))
    g = group()
    train_forecasters(TrainParams(groups=[g]))
    forecast(ForecastParams(groups=[g]))
    client = MlflowClient()
    # No actuals yet: nothing to compare, only age decides.
    assert retrain_due(client, g, 1000, drift_ratio=0.01, drift_min_actuals=6) == (
        False,
        "champion v1 is 0.0 h old (< 1000 h), no drift",
    )

    ingest(IngestParams(paths=[str(tmp_path / "new.csv")], kind="sensor", freq="5min"))
    engine = make_engine(service_env["SEQCAST_DATABASE_URL"])
    with engine.connect() as conn:
        live = pd.read_sql(
            text("SELECT yhat, actual FROM forecast_vs_actual WHERE model_version = '1'"), conn
        )
    engine.dispose()
    assert len(live) == 6
    mae = float((live["actual"] - live["yhat"]).abs().mean())

    due, why = retrain_due(client, g, 1000, drift_ratio=0.01, drift_min_actuals=6)
    assert due, why
    assert f"live MAE {mae:.4g} over 6 actuals" in why and "cgm-glucose" in why
    ratio = float(why.split(" is ")[1].split("x")[0])
    assert retrain_due(client, g, 1000, drift_ratio=ratio * 1.01, drift_min_actuals=6)[0] is False
    assert retrain_due(client, g, 1000, drift_ratio=ratio * 0.99, drift_min_actuals=6)[0] is True
    assert retrain_due(client, g, 1000, drift_ratio=0.01, drift_min_actuals=7)[0] is False
    assert retrain_due(client, g, 1000, drift_ratio=None)[0] is False
