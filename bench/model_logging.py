"""Time ``log_forecaster`` (log + register one version) per model on a temp SQLite MLflow.

Usage: ``python bench/model_logging.py [--repeats 5]``. Trains one tiny GRU and one tiny LSTM
(with calendar covariates and quantiles) on the bundled glucose series, then logs each
``--repeats`` times and prints the median and each time in seconds.
"""

from __future__ import annotations

import argparse
import gzip
import io
import statistics
import tempfile
import time
from importlib import resources
from pathlib import Path

import mlflow
import pandas as pd
import torch

from flows.tracking.registry import log_forecaster
from forecasting.forecaster import ForecasterSpec, GlobalForecaster
from forecasting.models import RecurrentForecasterConfig
from forecasting.panel import PanelConfig
from forecasting.training import TrainConfig


def glucose(last: int = 3000) -> pd.DataFrame:
    data = (resources.files("bokeh_sampledata") / "_data" / "CGM.csv.gz").read_bytes()
    raw = pd.read_csv(io.BytesIO(gzip.decompress(data)))
    frame = pd.DataFrame(
        {
            "series_id": "cgm-glucose",
            "ts": pd.to_datetime(raw["datetime"]).dt.tz_localize("UTC"),
            "value": raw["glucose"].astype(float),
        }
    ).drop_duplicates(["series_id", "ts"], keep=False)
    return frame.tail(last).reset_index(drop=True)


def trained(cell: str, **spec: object) -> GlobalForecaster:
    forecaster = GlobalForecaster(
        ForecasterSpec(
            model=RecurrentForecasterConfig(cell=cell, window=24, horizon=6, hidden_size=8),  # type: ignore[arg-type]
            train=TrainConfig(max_epochs=1, windows_per_epoch=256),
            panel=PanelConfig(test_size=40, val_size=300),
            season_length=288,
            **spec,  # type: ignore[arg-type]
        )
    )
    forecaster.fit(glucose(), {"cgm-glucose": "5min"})
    return forecaster


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    models = {
        "gru": trained("gru"),
        "lstm+calendar+quantiles": trained(
            "lstm", calendar=("hour", "dayofweek"), intervals="quantile"
        ),
    }
    with tempfile.TemporaryDirectory() as root:
        mlflow.set_tracking_uri(f"sqlite:///{Path(root) / 'mlflow.db'}")
        mlflow.set_experiment("log-bench")
        for name, forecaster in models.items():
            times = []
            for _ in range(args.repeats + 1):  # the first one warms imports up
                with mlflow.start_run():
                    start = time.perf_counter()
                    log_forecaster(forecaster, f"bench-{name}")
                    times.append(time.perf_counter() - start)
            rest = times[1:]
            print(
                f"{name}: median {statistics.median(rest):.2f} s "
                f"(first {times[0]:.2f} s; {', '.join(f'{t:.2f}' for t in rest)})"
            )


if __name__ == "__main__":
    main()
