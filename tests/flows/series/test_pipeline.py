"""End to end: the pipeline flow on real data, checked in the database and in MLflow."""

from __future__ import annotations

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sqlalchemy import text

from db import make_engine
from flows.series.params import IngestParams, PipelineParams
from flows.series.pipeline import pipeline
from tests.support.groups import tiny_groups

pytestmark = pytest.mark.slow


def test_pipeline_writes_forecasts_runs_and_a_champion(service_env: dict[str, str]) -> None:
    params = PipelineParams(
        ingest=IngestParams(bundled=["glucose", "stocks"]),
        groups=tiny_groups(),
        retrain_after_hours=0,
    )
    summary = pipeline(params)

    engine = make_engine(service_env["SEQCAST_DATABASE_URL"])
    with engine.connect() as conn:
        rows = pd.read_sql(
            text(
                "SELECT f.series_id, f.step, r.model_name FROM forecasts f "
                "JOIN forecast_runs r ON r.run_id = f.run_id"
            ),
            conn,
        )
        counts = dict(
            conn.execute(
                text("SELECT source, accepted + rejected - received FROM ingest_batches")
            ).all()
        )
    assert counts == {"bundled:glucose": 0, "bundled:stocks": 0}
    steps = rows.groupby("series_id")["step"].apply(sorted).to_dict()
    assert steps["cgm-glucose"] == list(range(1, 7))
    for ticker in ("AAPL", "GOOG", "IBM", "MSFT", "FB"):
        assert steps[f"stock-{ticker}"] == list(range(1, 6))  # FB's 196 days suffice here
    assert set(rows["model_name"]) == {"seqcast-glucose", "seqcast-prices"}

    client = MlflowClient()
    experiment = client.get_experiment_by_name("seqcast-test")
    runs = client.search_runs([experiment.experiment_id])
    parents = [
        r
        for r in runs
        if r.data.tags.get("flow") == "train-forecasters"
        and "mlflow.parentRunId" not in r.data.tags
    ]
    assert len(parents) == 2
    for parent in parents:
        children = [
            r
            for r in runs
            if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
            and r.data.tags.get("model_type") != "baseline"
        ]
        assert {c.data.tags["cell"] for c in children} == {"lstm", "gru"}
        for child in children:
            assert {
                "backtest_mase",
                "seasonal_naive_mase",
                "backtest_smape",
                "train_loss",
                "val_loss",
                "grad_norm_mean",
            } <= set(child.data.metrics)
            assert len(client.get_metric_history(child.info.run_id, "val_loss")) >= 1
            assert child.data.params["model.cell"] == child.data.tags["cell"]
            artifacts = {a.path for a in client.list_artifacts(child.info.run_id, "plots")}
            assert {
                "plots/forecast_vs_actual.png",
                "plots/loss_curve.png",
                "plots/grad_norm.png",
            } <= artifacts
    for name in ("seqcast-glucose", "seqcast-prices"):
        champion = client.get_model_version_by_alias(name, "champion")
        assert champion.tags["promotion"] == "promoted"
        written = summary.forecast.run(name.removeprefix("seqcast-"))
        assert written.model == f"{name} v{champion.version}"

    # A second run with a fresh champion retrains nothing and writes nothing new.
    with engine.connect() as conn:
        before = conn.execute(text("SELECT COUNT(*) FROM forecasts")).scalar_one()
    again = pipeline(
        PipelineParams(
            ingest=IngestParams(bundled=["glucose", "stocks"]),
            groups=tiny_groups(),
            retrain_after_hours=1000,
        )
    )
    assert again.train.outcomes == ()
    assert [w.created for w in again.forecast.written] == [False, False]
    assert all(r["already_loaded"] for r in again.ingest)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM forecasts")).scalar_one() == before
    engine.dispose()
