"""Train one global forecaster on every local GPU (or CPU process) with torchrun and DDP.

    torchrun --standalone --nproc-per-node N -m forecasting.distributed \\
        --data frame.parquet --freqs freqs.json --spec spec.json --out model.pt \\
        [--exogenous covariates.parquet] [--static attributes.json]

Each rank reads the same long frame, builds the same windows and takes its share of every
batch (see training.fit); gradients are averaged by DistributedDataParallel, so the result
matches a single-device run with the same global batch. Rank 0 writes the artifact (and the
training history beside it as JSON).
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch
import torch.distributed as dist

from forecasting.device import flush_denormals
from forecasting.forecaster import GlobalForecaster
from forecasting.spec import ForecasterSpec


def main(argv: list[str] | None = None) -> None:
    flush_denormals()  # before any torch work, so torch's threads inherit it
    parser = argparse.ArgumentParser(description="DDP training of one seqcast forecaster")
    parser.add_argument("--data", type=Path, required=True, help="parquet: series_id, ts, value")
    parser.add_argument("--freqs", type=Path, required=True, help="JSON {series_id: freq}")
    parser.add_argument("--spec", type=Path, required=True, help="JSON of ForecasterSpec")
    parser.add_argument("--out", type=Path, required=True, help="artifact written by rank 0")
    parser.add_argument("--exogenous", type=Path, help="parquet: series_id, ts, covariates")
    parser.add_argument("--static", type=Path, help="JSON records: series_id, name, value")
    args = parser.parse_args(argv)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    try:
        spec = ForecasterSpec.from_dict(json.loads(args.spec.read_text()))
        device = f"cuda:{local_rank}" if cuda else "cpu"
        spec = replace(spec, train=replace(spec.train, device=device))
        frame = pd.read_parquet(args.data)
        exogenous = None if args.exogenous is None else pd.read_parquet(args.exogenous)
        static = None if args.static is None else _read_static(args.static)
        forecaster = GlobalForecaster(spec)
        freqs = json.loads(args.freqs.read_text())
        result = forecaster.fit(frame, freqs, exogenous=exogenous, static=static)
        if dist.get_rank() == 0:
            forecaster.model.to("cpu")
            forecaster.save(args.out)
            history = {
                "history": result.history,
                "grad_norms": result.grad_norms,
                "best_epoch": result.best_epoch,
                "kept_epoch": result.kept_epoch,
                "world_size": result.world_size,
                "device": result.device,
                "precision": result.precision,
                "seconds": result.seconds,
                "windows_seen": result.windows_seen,
            }
            args.out.with_suffix(".json").write_text(json.dumps(history))
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _read_static(path: Path) -> pd.DataFrame:
    """Static attributes as written by flows.series.torchrun: each value stays a number or a
    text (a category), as forecasting.static tells them apart."""
    records = json.loads(path.read_text())
    return pd.DataFrame(records, columns=["series_id", "name", "value"]).astype({"value": object})


if __name__ == "__main__":
    main()
