"""Launch DDP training with torchrun from a flow task and bring the result back.

``forecasting.distributed`` does the training on every rank; this module writes its inputs,
runs ``torchrun --standalone`` as a subprocess (one process per GPU, or CPU processes over gloo
when asked for without GPUs), replays the per-epoch metrics to the callbacks (MLflow) and
loads rank 0's artifact.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import torch

from flows.errors import SeqcastError
from forecasting.device import flushing_denormals
from forecasting.forecaster import GlobalForecaster
from forecasting.spec import ForecasterSpec
from forecasting.training import Callback, TrainingDiverged, TrainResult


def processes_for(requested: int | None) -> int:
    """How many training processes: as requested, else one per GPU when there are several."""
    if requested is not None:
        return requested
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return gpus if gpus > 1 else 1


def _write_inputs(
    d: Path,
    spec: ForecasterSpec,
    frame: pd.DataFrame,
    freqs: dict[str, str],
    nproc: int,
    exogenous: pd.DataFrame | None,
    static: pd.DataFrame | None,
) -> list[str]:
    """Write the workers' inputs into ``d``; the torchrun command that reads them."""
    frame.to_parquet(d / "frame.parquet")
    (d / "freqs.json").write_text(json.dumps(freqs))
    (d / "spec.json").write_text(json.dumps(spec.to_dict()))
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc-per-node={nproc}", "-m", "forecasting.distributed",
        "--data", str(d / "frame.parquet"), "--freqs", str(d / "freqs.json"),
        "--spec", str(d / "spec.json"), "--out", str(d / "model.pt"),
    ]  # fmt: skip
    if exogenous is not None:
        exogenous.to_parquet(d / "exogenous.parquet")
        cmd += ["--exogenous", str(d / "exogenous.parquet")]
    if static is not None:
        # JSON, not parquet: a value is a number or a category's text, in one column
        static.to_json(d / "static.json", orient="records")
        cmd += ["--static", str(d / "static.json")]
    return cmd


def fit_with_torchrun(
    spec: ForecasterSpec,
    frame: pd.DataFrame,
    freqs: dict[str, str],
    nproc: int,
    callbacks: Sequence[Callback] = (),
    timeout_s: float = 6 * 3600,
    exogenous: pd.DataFrame | None = None,
    static: pd.DataFrame | None = None,
) -> tuple[GlobalForecaster, TrainResult]:
    """Train ``spec`` on ``frame`` (with its covariates ``exogenous`` and static attributes
    ``static``, as :meth:`GlobalForecaster.fit` takes them) with ``nproc`` DDP processes;
    returns rank 0's model."""
    with tempfile.TemporaryDirectory(prefix="seqcast-ddp-") as tmp:
        cmd = _write_inputs(Path(tmp), spec, frame, freqs, nproc, exogenous, static)
        # The workers compute with subnormals flushed exactly when this process does.
        env = {"SEQCAST_FLUSH_DENORMAL": "1" if flushing_denormals() else "0", **os.environ}
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env)
        except subprocess.TimeoutExpired as exc:
            raise SeqcastError(f"distributed training ran past {timeout_s:.0f} s") from exc
        if done.returncode != 0:
            tail = " | ".join(done.stderr.strip().splitlines()[-5:])
            if "TrainingDiverged" in done.stderr:
                raise TrainingDiverged(tail)
            raise SeqcastError(
                f"distributed training with {nproc} processes failed (exit {done.returncode}): "
                f"{tail}"
            )
        forecaster = GlobalForecaster.load(Path(tmp) / "model.pt")
        info = json.loads((Path(tmp) / "model.json").read_text())
    result = TrainResult(
        history=info["history"],
        grad_norms=info["grad_norms"],
        best_epoch=info["best_epoch"],
        kept_epoch=info.get("kept_epoch", info["best_epoch"]),
        best_val_loss=min((h["val_loss"] for h in info["history"]), default=float("inf")),
        device=info["device"],
        seconds=info["seconds"],
        windows_seen=info["windows_seen"],
        world_size=info["world_size"],
        precision=info.get("precision", "fp32"),
    )
    for record in result.history:
        metrics = {k: v for k, v in record.items() if k != "epoch"}
        for callback in callbacks:
            callback(int(record["epoch"]), metrics)
    return forecaster, result
