"""Work the flows no longer repeat: the MLflow dataset of a snapshot is built (and its schema
inferred) once for every run that logs it, and backtest examples are arrays that Prefect does
not walk element by element when a candidate is passed to a task."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from prefect.utilities.collections import visit_collection

from flows.series.data import GroupData, snapshot_hash
from flows.series.params import ModelGroup
from flows.tracking import comparison, plots
from forecasting.forecaster import GlobalForecaster
from forecasting.models import RecurrentForecasterConfig
from forecasting.panel import PanelConfig
from forecasting.spec import ForecasterSpec
from forecasting.training import TrainConfig


def _data(shift: float = 0.0) -> GroupData:
    ts = pd.date_range("2024-01-01", periods=300, freq="h", tz="UTC")
    rng = np.random.default_rng(1)
    frame = pd.concat(
        [
            pd.DataFrame(
                {
                    "series_id": f"s{k}",
                    "ts": ts,
                    "value": 5 + k + shift + np.sin(np.arange(300) / 4) + rng.normal(0, 0.1, 300),
                }
            )
            for k in range(3)
        ],
        ignore_index=True,
    )
    return GroupData(frame, {f"s{k}": "h" for k in range(3)}, snapshot_hash(frame))


def test_a_snapshot_is_one_dataset_logged_to_every_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEQCAST_DATABASE_URL", f"sqlite:///{tmp_path / 'db.sqlite'}")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment("overhead")
    group = ModelGroup(name="g", series_kind="sensor", horizon=6, test_size=12)
    data, other = _data(), _data(shift=1.0)
    first = comparison.training_dataset(group, data)
    assert "schema" in first.__dict__  # inferred once, when built
    assert comparison.training_dataset(group, data) is first
    assert comparison.training_dataset(group, other) is not first
    runs = []
    for _ in range(2):
        with mlflow.start_run() as run:
            comparison.log_training_dataset(group, data)
            runs.append(run.info.run_id)
    for run_id in runs:
        (inp,) = MlflowClient().get_run(run_id).inputs.dataset_inputs
        assert inp.dataset.digest == data.sha256[:36] and inp.dataset.name == "g"
        assert '"num_rows": 900' in inp.dataset.profile and "value" in inp.dataset.schema
        assert {t.key: t.value for t in inp.tags}["data_sha256"] == data.sha256
    for k in range(comparison._DATASETS_KEEP + 2):  # the cache stays small
        comparison.training_dataset(group, _data(shift=10.0 + k))
    assert len(comparison._DATASETS) == comparison._DATASETS_KEEP


def test_the_dataset_schema_is_the_one_mlflow_would_infer() -> None:
    from mlflow.types.utils import _infer_schema

    frame = _data().frame
    assert comparison.dataset_schema(frame) == _infer_schema(frame)
    # A value missing far beyond the sampled first rows still makes the column optional.
    gappy = frame.astype({"value": "float64"})
    gappy.loc[len(gappy) - 1, "value"] = np.nan
    schema = comparison.dataset_schema(gappy)
    assert schema == _infer_schema(gappy)
    assert [c.required for c in schema.inputs] == [True, True, False]


def test_backtest_examples_are_arrays_prefect_need_not_walk() -> None:
    data = _data()
    fitted = GlobalForecaster(
        ForecasterSpec(
            model=RecurrentForecasterConfig(window=24, horizon=6, hidden_size=8, num_layers=1),
            train=TrainConfig(max_epochs=1, windows_per_epoch=128, batch_size=64),
            panel=PanelConfig(test_size=24, val_size=48),
            season_length=24,
        )
    )
    fitted.fit(data.frame, data.freqs)
    bt = fitted.backtest()
    assert len(bt.examples) == 3
    for ex in bt.examples:
        assert all(isinstance(ex[k], np.ndarray) for k in ("history", "actual", "model"))
        assert len(ex["history"]) == 72 and len(ex["actual"]) == 6
    seen: list[object] = []
    visit_collection(bt.examples, seen.append, return_data=False)
    assert not any(isinstance(x, float) for x in seen)  # arrays are leaves, not 1000s of floats
    fig = plots.forecast_vs_actual(bt.examples, "t")
    assert len(fig.axes) == 3
    plots.close(fig)
