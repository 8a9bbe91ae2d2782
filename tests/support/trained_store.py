"""A small real training run for the users' view tests: stock prices, LSTM, GRU and RNN.

Runs the ``pipeline`` flow (ingest, train-forecasters, forecast) on the bundled stock prices
with tiny models, into a SQLite database and an MLflow store under ``root``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flows.series.params import IngestParams, ModelGroup, PipelineParams

EXPERIMENT = "seqcast-users"


def tiny_prices(cells: tuple[str, ...] = ("lstm", "gru", "rnn")) -> ModelGroup:
    return ModelGroup(
        name="prices",
        series_kind="price",
        cells=list(cells),  # type: ignore[arg-type]
        window=20,
        horizon=5,
        season_length=5,
        hidden_size=8,
        num_layers=1,
        max_epochs=3,
        windows_per_epoch=512,
        batch_size=64,
        val_size=100,
        test_size=50,
    )


def environment(root: Path) -> dict[str, str]:
    return {
        "SEQCAST_DATABASE_URL": f"sqlite:///{root / 'seqcast.db'}",
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "SEQCAST_EXPERIMENT": EXPERIMENT,
    }


def run(root: Path) -> dict[str, Any]:
    """Migrate and run the pipeline; the caller has set :func:`environment` and the cwd."""
    import mlflow

    from db import make_engine
    from db.migrate import upgrade
    from flows.series.pipeline import pipeline

    env = environment(root)
    engine = make_engine(env["SEQCAST_DATABASE_URL"])
    upgrade(engine)
    engine.dispose()
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    return pipeline(
        PipelineParams(
            ingest=IngestParams(bundled=["stocks"]), groups=[tiny_prices()], retrain_after_hours=0
        )
    )
