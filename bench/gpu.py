"""seqcast on CUDA: its training loop against a bare cuDNN loop, mixed precision, two GPUs.

    .venv/bin/python bench/gpu.py [--quick] [--train PATH]     # on a CUDA machine
    .venv/bin/python bench/gpu.py --device cpu --quick --threads 1   # smoke run on the CPU

M4 Hourly (each series less its last 48 points; scored on those 48), 2-layer LSTM 128,
input 168, horizon 48 (``equal_spec`` of bench/training.py):

1. Throughput per batch size: seqcast's loop (``GlobalForecaster.fit``, precision ``auto``:
   bf16 on a GPU with native bf16) against a bare loop at equal settings (pre-built tensors
   resident on the device, cuDNN ``nn.LSTM`` + ``Linear``, AdamW, clipping, the same
   precision), interleaved twice; target >= 0.8x. A torch.profiler pass over a short fit
   counts host-device synchronisations (a loop without stalls has a handful per epoch).
2. Precision: the same spec trained in fp32, bf16 and fp16 (gradient scaler), plus fp32
   with a second seed (the seed-to-seed spread); sMAPE/MASE/OWA on the held-out points.
   Target: each sMAPE within max(5 %, 2x the seed spread) of fp32's, and the forecasts
   computed in float32 (a forward hook on the model) whatever precision trained it.
3. With two or more GPUs: ``torchrun --nproc-per-node 2 -m forecasting.distributed`` (NCCL)
   on the same spec and global batch as one GPU: windows/s, best validation loss and sMAPE
   against the single-GPU run of the same precision.

Without a CUDA device (``--device cuda``, the default) it prints "not measured: no CUDA
device", records that in bench/results/perf/gpu.json and exits 0. ``--device cpu`` runs the
same code on the CPU (fp16 skipped: autocast has no CPU LSTM kernel; step 3 on two gloo
processes) and writes bench/results/perf/work/gpu-cpu.json, never the GPU result.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from common import M4_TRAIN, RESULTS_DIR, ROOT, target, write_result
from m4_hourly import long_frame, read_wide
from torch import nn
from training import HORIZON, Scorer, equal_spec, prebuilt_windows

from forecasting.device import AUTOCAST_DTYPES, autocast_context, resolve_precision
from forecasting.forecaster import GlobalForecaster
from forecasting.spec import ForecasterSpec

TITLE = "Training on CUDA: seqcast vs the bare cuDNN loop, mixed precision, two GPUs"
NOT_MEASURED = "not measured: no CUDA device"
RATIO_GOAL = 0.8
SMAPE_RTOL = 0.05


def on_device(spec: ForecasterSpec, device: str | None, **train: Any) -> ForecasterSpec:
    return dataclasses.replace(spec, train=dataclasses.replace(spec.train, device=device, **train))


def bare_loop(
    x: torch.Tensor, y: torch.Tensor, steps: int, batch: int, device: str, precision: str
) -> float:
    """Pre-built [K, 168, 1] / [K, 48] tensors through nn.LSTM + Linear: windows per second.

    The same optimiser, clipping and precision as seqcast's loop (fp16 with a scaler); the
    clock stops after a final synchronise.
    """
    dev = torch.device(device)
    torch.manual_seed(0)
    lstm = nn.LSTM(1, 128, num_layers=2, batch_first=True).to(dev)
    head = nn.Linear(128, HORIZON).to(dev)
    params = [*lstm.parameters(), *head.parameters()]
    cuda = dev.type == "cuda"
    opt = torch.optim.AdamW(params, lr=2e-3, weight_decay=1e-4, fused=cuda)
    ctx = autocast_context(dev, precision)
    scaler = torch.amp.GradScaler(dev.type, enabled=resolve_precision(precision, dev) == "fp16")
    x, y = x.to(dev), y.to(dev)
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for i in range(steps):
        j = (i * batch) % (len(x) - batch)
        with ctx:
            out, _ = lstm(x[j : j + batch])
            pred = head(out[:, -1])
        loss = (pred.float() - y[j : j + batch]).abs().mean()
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        scaler.step(opt)
        scaler.update()
    if cuda:
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - t0)


def sync_counts(data: dict[str, Any], device: str, batch: int, steps: int) -> list[str]:
    from torch.profiler import ProfilerActivity, profile

    forecaster = GlobalForecaster(on_device(equal_spec(steps, batch, 1), device))
    activities = [ProfilerActivity.CPU, ProfilerActivity.CUDA]
    with profile(activities=activities) as prof:
        forecaster.fit(data["frame"], data["freqs"])
    names = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "Memcpy DtoH", "aten::item")
    lines = []
    for e in prof.key_averages():
        if any(n in e.key for n in names):
            lines.append(f"batch {batch}: {e.key} x{e.count} over {steps} steps + 1 validation")
    top = sorted(prof.key_averages(), key=lambda e: e.self_device_time_total, reverse=True)[:5]
    lines += [
        f"batch {batch} GPU time: {e.key} {e.self_device_time_total / 1e3:.1f} ms" for e in top
    ]
    return lines


def throughput(data: dict[str, Any], args: argparse.Namespace, out: dict[str, Any]) -> None:
    for batch in [int(b) for b in args.batches.split(",")]:
        x, y = prebuilt_windows(data, min(args.steps * batch, 200_000))
        bare, ours = [], []
        for _ in range(2):
            bare.append(bare_loop(x, y, args.steps, batch, args.device, "auto"))
            spec = on_device(equal_spec(args.steps, batch, 1), args.device)
            result = GlobalForecaster(spec).fit(data["frame"], data["freqs"])
            ours.append(result.windows_seen / result.seconds)
        ratio = sum(ours) / sum(bare)
        print(f"batch {batch}: bare {bare} seqcast {ours} ratio {ratio:.2f}", flush=True)
        out["rows"].append(
            ["throughput", f"batch {batch}", result.precision,
             f"{sum(bare) / 2:,.0f}", f"{sum(ours) / 2:,.0f}", f"{ratio:.2f}", "", "", "", ""]
        )  # fmt: skip
        out["targets"].append(
            target(
                f"seqcast vs bare cuDNN loop, batch {batch} ({result.precision})",
                f">= {RATIO_GOAL}x", ratio, RATIO_GOAL, "min",
            )
        )  # fmt: skip
        if args.device.startswith("cuda"):
            out["profile"] += sync_counts(data, args.device, batch, min(args.steps, 50))


def forecasts(forecaster: GlobalForecaster, frame: Any) -> tuple[dict[str, Any], set[str]]:
    """Held-out forecasts per series and the dtypes the model's forward pass returned."""
    dtypes: set[str] = set()
    hook = forecaster.model.register_forward_hook(
        lambda _m, _i, output: dtypes.add(str(output.dtype).removeprefix("torch."))
    )
    try:
        rows, skipped = forecaster.predict(frame)
    finally:
        hook.remove()
    if skipped:
        raise SystemExit(f"series not forecast: {skipped}")
    fc = {str(k): g.sort_values("step")["yhat"].to_numpy() for k, g in rows.groupby("series_id")}
    return fc, dtypes


def precisions(
    data: dict[str, Any], scorer: Scorer, args: argparse.Namespace, out: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    base = equal_spec(args.acc_steps, args.acc_batch, args.acc_epochs)
    runs = [("fp32", "fp32", 0), ("fp32 seed 1", "fp32", 1), ("bf16", "bf16", 0)]
    runs.append(("fp16", "fp16", 0))
    done: dict[str, dict[str, Any]] = {}
    for name, precision, seed in runs:
        if precision == "fp16" and not args.device.startswith("cuda"):
            out["notes"].append("fp16 not run on the CPU: autocast has no CPU fp16 LSTM kernel")
            continue
        spec = on_device(base, args.device, precision=precision, seed=seed)
        forecaster = GlobalForecaster(spec)
        result = forecaster.fit(data["frame"], data["freqs"])
        fc, dtypes = forecasts(forecaster, data["frame"])
        score = scorer(fc)
        skipped = int(sum(h["skipped_steps"] for h in result.history))
        done[name] = {"result": result, "score": score, "dtypes": dtypes, "skipped": skipped}
        print(f"{name}: {result.precision} {score} skipped {skipped} {dtypes}", flush=True)
        out["rows"].append(
            ["precision", name, result.precision, "",
             f"{result.windows_seen / result.seconds:,.0f}", "", f"{result.best_val_loss:.4f}",
             f"{score['smape']:.3f}", f"{score['owa']:.3f}", f"{skipped} / {','.join(dtypes)}"]
        )  # fmt: skip
    ref = done["fp32"]["score"]["smape"]
    spread = abs(done["fp32 seed 1"]["score"]["smape"] / ref - 1)
    tol = max(SMAPE_RTOL, 2 * spread)
    out["notes"].append(
        f"sMAPE tolerance {100 * tol:.1f} %: max(5 %, 2x the fp32 seed-to-seed gap "
        f"{100 * spread:.1f} %)"
    )
    for name in ("bf16", "fp16"):
        if name in done:
            gap = abs(done[name]["score"]["smape"] / ref - 1)
            goal = f"<= {100 * tol:.1f} %"
            out["targets"].append(
                target(f"{name} sMAPE vs fp32", goal, 100 * gap, 100 * tol, "max", "%")
            )
    fp32_out = all(r["dtypes"] == {"float32"} for r in done.values())
    out["targets"].append(
        target("forecasts computed in float32 whatever the training precision", "all",
               float(fp32_out), 1.0, "min", "")
    )  # fmt: skip
    return done


def two_processes(
    data: dict[str, Any],
    scorer: Scorer,
    args: argparse.Namespace,
    single: dict[str, dict[str, Any]],
    out: dict[str, Any],
) -> None:
    """The accuracy spec on two processes (NCCL on two GPUs, gloo on the CPU)."""
    precision = resolve_precision("auto", torch.device(args.device))
    spec = on_device(
        equal_spec(args.acc_steps, args.acc_batch, args.acc_epochs), None, precision="auto"
    )
    with tempfile.TemporaryDirectory(prefix="seqcast-gpu-bench-") as tmp:
        d = Path(tmp)
        data["frame"].to_parquet(d / "frame.parquet")
        (d / "freqs.json").write_text(json.dumps(data["freqs"]))
        (d / "spec.json").write_text(json.dumps(spec.to_dict()))
        cmd = [
            sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
            "2", "-m", "forecasting.distributed", "--data", str(d / "frame.parquet"),
            "--freqs", str(d / "freqs.json"), "--spec", str(d / "spec.json"),
            "--out", str(d / "model.pt"),
        ]  # fmt: skip
        # This checkout's code in the workers, whatever the environment has installed.
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
        env = {**os.environ, "PYTHONPATH": path, "MASTER_ADDR": "127.0.0.1"}
        if not args.device.startswith("cuda"):
            env["OMP_NUM_THREADS"] = "1"
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
        if done.returncode != 0:
            out["notes"].append(f"torchrun failed: {done.stderr.strip().splitlines()[-3:]}")
            print(done.stderr[-4000:], file=sys.stderr)
            return
        info = json.loads((d / "model.json").read_text())
        fc, dtypes = forecasts(GlobalForecaster.load(d / "model.pt"), data["frame"])
    score = scorer(fc)
    ddp_val = min(h["val_loss"] for h in info["history"])
    one = single[precision]
    speed = info["windows_seen"] / info["seconds"]
    speed_one = one["result"].windows_seen / one["result"].seconds
    print(f"2 processes: {info['precision']} {score} {speed:.0f} w/s", flush=True)
    out["rows"].append(
        ["2 processes", f"{'nccl' if args.device.startswith('cuda') else 'gloo'}",
         info.get("precision", "?"), f"{speed_one:,.0f} (1 device)", f"{speed:,.0f}",
         f"{speed / speed_one:.2f}", f"{ddp_val:.4f}", f"{score['smape']:.3f}",
         f"{score['owa']:.3f}", ",".join(dtypes)]
    )  # fmt: skip
    gap = abs(ddp_val / one["result"].best_val_loss - 1)
    out["targets"].append(
        target(f"2-process best val loss vs 1 device ({precision})", "<= 5 %", 100 * gap, 5.0,
               "max", "%")
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=Path, default=M4_TRAIN)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=600, help="throughput steps")
    parser.add_argument("--batches", default="32,1024", help="throughput batch sizes")
    parser.add_argument("--acc-steps", type=int, default=3000, help="precision runs' steps")
    parser.add_argument("--acc-batch", type=int, default=256)
    parser.add_argument("--acc-epochs", type=int, default=6)
    parser.add_argument("--series", type=int, default=0, help="first N series (0: all 414)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's)")
    parser.add_argument("--quick", action="store_true", help="smoke run: small budgets")
    args = parser.parse_args()
    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        print(NOT_MEASURED, flush=True)
        write_result("gpu", {
            "title": TITLE, "settings": {"device": args.device}, "targets": [],
            "notes": [f"{NOT_MEASURED} on this machine (run bench/gpu.py where one is "
                      "present; `make bench` runs it and records this line otherwise)"],
        })  # fmt: skip
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.steps, args.acc_steps, args.acc_epochs = 20, 40, 2
        args.series = args.series or (0 if cuda else 16)
        args.batches = args.batches if cuda else "32"
    if not args.train.exists():
        raise SystemExit(f"{args.train}: not found (M4 Hourly-train.csv; pass --train PATH)")
    full = read_wide(args.train)
    if args.series:
        full = dict(list(full.items())[: args.series])
    train = {k: v[:-HORIZON] for k, v in full.items()}
    scorer = Scorer(train, {k: v[-HORIZON:] for k, v in full.items()})
    data = {"frame": long_frame(train), "freqs": dict.fromkeys(train, "h"), "train": train}
    out: dict[str, Any] = {"rows": [], "targets": [], "profile": [], "notes": []}
    throughput(data, args, out)
    single = precisions(data, scorer, args, out)
    gpus = torch.cuda.device_count() if cuda else 0
    if gpus >= 2 or not cuda:
        two_processes(data, scorer, args, single, out)
    else:
        out["notes"].append(f"{gpus} CUDA device: the two-GPU torchrun run needs two")
    write_result("gpu" if cuda else "gpu-cpu", {
        "title": TITLE if cuda else f"{TITLE} (CPU smoke run, not a GPU result)",
        "settings": {
            "device": torch.cuda.get_device_name(0) if cuda else "cpu", "gpus": gpus,
            "cudnn": torch.backends.cudnn.version() if cuda else None,
            "bf16_native": cuda and torch.cuda.is_bf16_supported(including_emulation=False),
            "series": len(train), "steps": args.steps, "acc_steps": args.acc_steps,
            "acc_batch": args.acc_batch, "acc_epochs": args.acc_epochs,
            "autocast_dtypes": sorted(AUTOCAST_DTYPES),
        },
        "table": {"columns": ["part", "run", "precision", "bare / reference windows/s",
                              "seqcast windows/s", "ratio", "best val loss", "sMAPE", "OWA",
                              "skipped steps / forecast dtype"],
                  "rows": out["rows"]},
        "targets": out["targets"], "profile": out["profile"], "notes": out["notes"],
    }, None if cuda else RESULTS_DIR / "work")  # fmt: skip


if __name__ == "__main__":
    main()
