"""The training benchmark on CUDA with autocast, as a ratio to the bare cuDNN loop.

    .venv/bin/python bench/gpu.py [--steps 600] [--batches 32,1024] [--device cuda]

For each batch size: the bare loop (pre-built tensors resident on the GPU, nn.LSTM under the
same bf16 autocast) and seqcast's training loop (``forecasting.training.fit`` via
``GlobalForecaster.fit`` with ``device="cuda"``) on M4 Hourly, 2-layer LSTM 128, input 168,
horizon 48, interleaved twice. A torch.profiler pass over a short fit counts the host-device
synchronisations (``cudaStreamSynchronize``, device-to-host copies) per training step: a
loop without stalls has a handful per epoch, not per step.

Without a CUDA device it records that nothing was measured and exits 0.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch
from common import M4_TRAIN, target, write_result
from m4_hourly import long_frame, read_wide
from training import HORIZON, bare_loop, equal_spec, prebuilt_windows

from forecasting.forecaster import GlobalForecaster
from forecasting.spec import ForecasterSpec


def on_device(spec: ForecasterSpec, device: str) -> ForecasterSpec:
    return dataclasses.replace(spec, train=dataclasses.replace(spec.train, device=device))


def sync_counts(data: dict, device: str, batch: int, steps: int) -> list[str]:  # type: ignore[type-arg]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=Path, default=M4_TRAIN)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batches", default="32,1024")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        write_result("gpu", {
            "title": "Training on CUDA with autocast vs the bare cuDNN loop",
            "settings": {"device": args.device},
            "notes": ["no CUDA device on this machine: not measured (run bench/gpu.py where "
                      "one is present; `make bench` runs it and records this line otherwise)"],
            "targets": [],
        })  # fmt: skip
        return
    if args.quick:
        args.steps = 20
    full = read_wide(args.train)
    train = {k: v[:-HORIZON] for k, v in full.items()}
    data = {"frame": long_frame(train), "freqs": dict.fromkeys(train, "h"), "train": train}
    rows, targets, profile_lines = [], [], []
    for batch in [int(b) for b in args.batches.split(",")]:
        x, y = prebuilt_windows(data, min(args.steps * batch, 200_000))
        bare, ours = [], []
        for _ in range(2):
            bare.append(bare_loop(x, y, args.steps, batch, args.device))
            forecaster = GlobalForecaster(on_device(equal_spec(args.steps, batch, 1), args.device))
            result = forecaster.fit(data["frame"], data["freqs"])
            ours.append(result.windows_seen / result.seconds)
        ratio = sum(ours) / sum(bare)
        rows.append([batch, f"{sum(bare) / 2:,.0f}", f"{sum(ours) / 2:,.0f}", f"{ratio:.2f}"])
        targets.append(
            target(f"seqcast vs bare cuDNN loop, batch {batch}", ">= 0.9x", ratio, 0.9, "min")
        )
        profile_lines += sync_counts(data, args.device, batch, min(args.steps, 50))
    write_result("gpu", {
        "title": "Training on CUDA with autocast vs the bare cuDNN loop",
        "settings": {"device": torch.cuda.get_device_name(0) if torch.cuda.is_available()
                     else args.device, "steps": args.steps},
        "table": {"columns": ["batch", "bare windows/s", "seqcast windows/s", "ratio"],
                  "rows": rows},
        "targets": targets,
        "profile": profile_lines,
    })  # fmt: skip


if __name__ == "__main__":
    main()
