"""Train one peer library's LSTM on M4 Hourly and forecast the held-out 48 points.

Runs inside the peers' own virtual environment (bench/.peers-venv, made by bench/training.py),
so it imports only numpy, pandas, torch, pytorch_lightning and the peer library, never
seqcast. Writes ``<out>.npz`` (forecasts [series, 48] in file order) and ``<out>.json``
(times, steps, windows per step, versions).

    bench/.peers-venv/bin/python bench/peer_fit.py neuralforecast --out DIR/nf
    bench/.peers-venv/bin/python bench/peer_fit.py darts --out DIR/darts

Both get the same architecture and budget: a 2-layer LSTM with 128 hidden units reading 168
points and forecasting 48, ``--steps`` optimizer steps of ``--batch`` windows, each library's
own defaults otherwise (Adam at 1e-3; NeuralForecast's robust per-window scaler and MAE loss,
its MLP decoder; Darts' per-series min-max scaler and MSE loss, its linear head). Darts
trains in the dtype of its series, so they are given as float32 like the other two (float64
series made it about 3x slower here).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch

HORIZON, WINDOW = 48, 168


CLOCK: dict[str, float] = {"batches": 0}


class LoopClock(pl.Callback):
    """Wall time from the first training batch to the end of training (the loop alone).

    Kept in the module-level CLOCK: NeuralForecast deep-copies its models, callbacks included.
    """

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):  # type: ignore[no-untyped-def]
        CLOCK.setdefault("first", time.perf_counter())
        CLOCK["batches"] += 1

    def on_train_end(self, trainer, pl_module):  # type: ignore[no-untyped-def]
        CLOCK["end"] = time.perf_counter()


def read_wide(path: Path) -> tuple[list[str], list[np.ndarray]]:
    frame = pd.read_csv(path)
    ids = frame.iloc[:, 0].astype(str).tolist()
    values = frame.iloc[:, 1:].to_numpy(dtype=np.float64)
    return ids, [row[~np.isnan(row)] for row in values]


def trainer_kwargs(clock: LoopClock) -> dict[str, object]:
    return {
        "accelerator": "cpu",
        "devices": 1,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "enable_checkpointing": False,
        "logger": False,
        "callbacks": [clock],
    }


def run_neuralforecast(
    ids: list[str], train: list[np.ndarray], args: argparse.Namespace, clock: LoopClock
) -> tuple[np.ndarray, float, float, str]:
    import neuralforecast
    from neuralforecast import NeuralForecast
    from neuralforecast.models import LSTM

    end = pd.Timestamp("2020-01-01")
    frame = pd.concat(
        pd.DataFrame(
            {"unique_id": sid, "ds": pd.date_range(end=end, periods=len(y), freq="h"), "y": y}
        )
        for sid, y in zip(ids, train, strict=True)
    )
    model = LSTM(
        h=HORIZON,
        input_size=WINDOW,
        encoder_n_layers=2,
        encoder_hidden_size=128,
        max_steps=args.steps,
        batch_size=args.batch,  # series per batch
        windows_batch_size=args.batch,  # windows per optimizer step
        val_check_steps=args.steps + 1,
        random_seed=args.seed,
        **trainer_kwargs(clock),
    )
    nf = NeuralForecast(models=[model], freq="h")
    t0 = time.perf_counter()
    nf.fit(df=frame)
    t1 = time.perf_counter()
    out = nf.predict()
    t2 = time.perf_counter()
    column = next(c for c in out.columns if c.startswith("LSTM"))
    out = out.reset_index() if "unique_id" not in out.columns else out
    by_id = {str(k): g.sort_values("ds")[column].to_numpy() for k, g in out.groupby("unique_id")}
    return np.stack([by_id[s] for s in ids]), t1 - t0, t2 - t1, neuralforecast.__version__


def run_darts(
    ids: list[str], train: list[np.ndarray], args: argparse.Namespace, clock: LoopClock
) -> tuple[np.ndarray, float, float, str]:
    import darts
    from darts import TimeSeries
    from darts.dataprocessing.transformers import Scaler
    from darts.models import BlockRNNModel

    end = pd.Timestamp("2020-01-01")
    series = [
        TimeSeries.from_times_and_values(
            pd.date_range(end=end, periods=len(y), freq="h"), y.astype(np.float32)
        )
        for y in train
    ]
    model = BlockRNNModel(
        input_chunk_length=WINDOW,
        output_chunk_length=HORIZON,
        model="LSTM",
        hidden_dim=128,
        n_rnn_layers=2,
        batch_size=args.batch,
        n_epochs=10_000,  # capped by max_steps below
        random_state=args.seed,
        pl_trainer_kwargs={**trainer_kwargs(clock), "max_steps": args.steps},
    )
    t0 = time.perf_counter()
    scaler = Scaler()  # per-series min-max, the usual Darts recipe for a global model
    scaled = scaler.fit_transform(series)
    model.fit(scaled, verbose=False)
    t1 = time.perf_counter()
    pred = model.predict(n=HORIZON, series=scaled, verbose=False)
    forecasts = np.stack([p.values()[:, 0] for p in scaler.inverse_transform(pred)])
    t2 = time.perf_counter()
    return forecasts, t1 - t0, t2 - t1, darts.__version__


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("peer", choices=["neuralforecast", "darts"])
    parser.add_argument("--train", type=Path, required=True, help="M4 Hourly-train.csv")
    parser.add_argument("--out", type=Path, required=True, help="output path without suffix")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--series", type=int, default=0, help="first N series only (0: all)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    for name in ("pytorch_lightning", "lightning", "lightning.pytorch", "darts"):
        logging.getLogger(name).setLevel(logging.ERROR)
    os.environ.setdefault("NIXTLA_ID_AS_COL", "1")
    ids, full = read_wide(args.train)
    if args.series:
        ids, full = ids[: args.series], full[: args.series]
    train = [y[:-HORIZON] for y in full]
    clock = LoopClock()
    run = run_neuralforecast if args.peer == "neuralforecast" else run_darts
    forecasts, fit_s, predict_s, version = run(ids, train, args, clock)
    loop_s = CLOCK.get("end", 0.0) - CLOCK.get("first", 0.0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out.with_suffix(".npz"), forecasts=forecasts, ids=np.array(ids))
    info = {
        "peer": args.peer,
        "version": version,
        "torch": torch.__version__,
        "fit_s": fit_s,
        "loop_s": loop_s,
        "predict_s": predict_s,
        "steps": int(CLOCK["batches"]),
        "batch": args.batch,
        "threads": torch.get_num_threads(),
    }
    args.out.with_suffix(".json").write_text(json.dumps(info, indent=1))
    print(json.dumps(info), flush=True)


if __name__ == "__main__":
    main()
