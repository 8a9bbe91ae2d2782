"""torchrun + DistributedDataParallel: two CPU processes (gloo) train the same model as one
process with the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecasting.forecaster import GlobalForecaster
from forecasting.models import RecurrentForecasterConfig
from forecasting.panel import PanelConfig
from forecasting.spec import ForecasterSpec
from forecasting.training import TrainConfig


@pytest.mark.slow
def test_two_ddp_processes_match_one_process(glucose: pd.DataFrame, tmp_path: Path) -> None:
    frame = glucose.iloc[-3000:].reset_index(drop=True)
    freqs = {"cgm-glucose": "5min"}
    spec = ForecasterSpec(
        # No dropout: each rank would draw different masks than one process does.
        model=RecurrentForecasterConfig(
            window=24, horizon=6, hidden_size=16, num_layers=1, dropout=0.0
        ),
        train=TrainConfig(max_epochs=2, windows_per_epoch=1024, batch_size=64, device="cpu"),
        panel=PanelConfig(test_size=60, val_size=200),
        season_length=12,
    )
    frame.to_parquet(tmp_path / "frame.parquet")
    (tmp_path / "freqs.json").write_text(json.dumps(freqs))
    (tmp_path / "spec.json").write_text(json.dumps(spec.to_dict()))
    out = tmp_path / "model.pt"
    # Subnormals kept, like the in-process reference run (the entry point flushes by default).
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MASTER_ADDR": "127.0.0.1",
        "SEQCAST_FLUSH_DENORMAL": "0",
    }
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "forecasting.distributed", "--data", str(tmp_path / "frame.parquet"),
        "--freqs", str(tmp_path / "freqs.json"), "--spec", str(tmp_path / "spec.json"),
        "--out", str(out),
    ]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    history = json.loads(out.with_suffix(".json").read_text())
    assert history["world_size"] == 2
    assert history["precision"] == "fp32"  # "auto" on the CPU

    single = GlobalForecaster(spec)
    result = single.fit(frame, freqs)
    ddp = GlobalForecaster.load(out)
    np.testing.assert_allclose(
        [h["val_loss"] for h in history["history"]],
        [h["val_loss"] for h in result.history],
        rtol=1e-4,
    )
    a, _ = single.predict(frame)
    b, _ = ddp.predict(frame)
    np.testing.assert_allclose(a["yhat"], b["yhat"], rtol=1e-4)


@pytest.mark.slow
def test_the_train_flow_reaches_torchrun(service_env, prefect_harness) -> None:  # type: ignore[no-untyped-def]
    """A group with processes=2 trains through torchrun (two gloo CPU processes) and registers."""
    from mlflow.tracking import MlflowClient

    from flows.series.ingest import ingest
    from flows.series.params import IngestParams, ModelGroup, TrainParams
    from flows.series.train import train_forecasters

    ingest(IngestParams(bundled=["glucose"]))
    group = ModelGroup(
        name="glucose-ddp",
        series_kind="sensor",
        cells=["gru"],
        window=24,
        horizon=6,
        season_length=288,
        hidden_size=8,
        num_layers=1,
        dropout=0.0,
        max_epochs=2,
        windows_per_epoch=512,
        batch_size=64,
        val_size=600,
        test_size=240,
        processes=2,
    )
    summary = train_forecasters(TrainParams(groups=[group]))
    assert summary.group("glucose-ddp").decision.promoted is True
    client = MlflowClient()
    version = client.get_model_version_by_alias("seqcast-glucose-ddp", "champion")
    run = client.get_run(version.run_id)
    assert run.data.params["processes"] == "2"
    assert "val_loss" in run.data.metrics and "backtest_mase" in run.data.metrics
