"""Inference latency and throughput of a saved champion, loaded once.

A small global LSTM is trained once on real M4 Hourly series (every 4th of
../shared/data/m4/Hourly-train.csv), saved with ``GlobalForecaster.save`` and loaded with
``GlobalForecaster.load`` (the champion as the forecast flow gets it). Then:

* batch 1: ``predict`` on one series' frame per call, every series in turn: per-series
  latency (median, p95) -- what an on-demand forecast of one series costs;
* all series in one ``predict`` call: series/s;
* ``forecasting.training.predict`` on pre-built scaled windows (the model alone) at batch
  sizes 1, 8, 64, 512 and all windows in one batch: windows/s.

    .venv/bin/python bench/inference.py [--quick] [--threads 2] [--profile]
        [--before bench/results/perf/inference.json]

``--before FILE`` puts an earlier run's numbers (e.g. of the previous product code) beside
this run's in the table.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from common import M4_TRAIN, load_average, write_result

from forecasting.forecaster import GlobalForecaster
from forecasting.models import RecurrentForecasterConfig
from forecasting.panel import PanelConfig
from forecasting.spec import ForecasterSpec
from forecasting.training import TrainConfig, predict

WINDOW, HORIZON = 168, 48


def spec(quick: bool) -> ForecasterSpec:
    return ForecasterSpec(
        model=RecurrentForecasterConfig(
            cell="lstm", window=WINDOW, horizon=HORIZON, hidden_size=32, num_layers=1
        ),
        train=TrainConfig(max_epochs=1, windows_per_epoch=256 if quick else 1024),
        panel=PanelConfig(test_size=96, val_size=96),
        season_length=24,
    )


def timed(fn: Any, repeat: int) -> float:
    """Median seconds of ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def windows_of(fc: GlobalForecaster, frame: pd.DataFrame, per_series: int) -> np.ndarray:
    """``per_series`` scaled input windows [K, W] from the end of every series."""
    assert fc.scaler is not None
    out = []
    for sid, g in frame.groupby("series_id", sort=False):
        y = g["value"].to_numpy(np.float64)
        i = fc.scaler.index(str(sid))
        for k in range(per_series):
            end = len(y) - k * 12  # origins 12 hours apart
            out.append(fc.scaler.transform(i, y[end - WINDOW : end]))
    return np.stack(out).astype(np.float32)


def top_functions(fn: Any, n: int = 10) -> list[str]:
    """cProfile of one call: the top functions by cumulative time, with their share."""
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.runcall(fn)
    wall = time.perf_counter() - t0
    stats = pstats.Stats(prof, stream=io.StringIO())
    rows = sorted(stats.stats.items(), key=lambda kv: -kv[1][3])  # type: ignore[attr-defined]
    lines = []
    for (file, line, func), (_, ncalls, tottime, cumtime, _) in rows:
        if func.startswith("<") or "cProfile" in file or cumtime < 0.01 * wall:
            continue
        where = f"{Path(file).parent.name}/{Path(file).name}:{line}" if file != "~" else "builtin"
        lines.append(
            f"{func} ({where}): {100 * cumtime / wall:.0f} % cumulative, "
            f"{100 * tottime / wall:.0f} % own, {ncalls} calls"
        )
        if len(lines) >= n:
            break
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--series", type=int, help="default 100 (quick: 20)")
    parser.add_argument("--profile", action="store_true", help="cProfile + torch.profiler")
    parser.add_argument("--before", type=Path, help="an earlier inference.json to compare")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    n_series = args.series or (20 if args.quick else 100)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from m4_hourly import long_frame, read_wide

    full = read_wide(M4_TRAIN)
    ids = list(full)[:: max(len(full) // n_series, 1)][:n_series]
    frame = long_frame({k: full[k] for k in ids})
    freqs = dict.fromkeys(ids, "h")
    trained = GlobalForecaster(spec(args.quick))
    t0 = time.perf_counter()
    trained.fit(frame, freqs)
    fit_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        path = trained.save(Path(tmp) / "champion.pt")
        t0 = time.perf_counter()
        fc = GlobalForecaster.load(path)
        load_ms = 1000 * (time.perf_counter() - t0)
    load_before = load_average()
    fc.predict(frame)  # warm-up

    # Batch 1: one series per predict call.
    per_frames = [g for _, g in frame.groupby("series_id", sort=False)]
    lat = []
    for sub in per_frames * (1 if args.quick else 2):
        t0 = time.perf_counter()
        rows, skipped = fc.predict(sub)
        lat.append(1000 * (time.perf_counter() - t0))
        assert len(rows) == HORIZON and not skipped
    lat_ms = np.array(lat)
    all_s = timed(lambda: fc.predict(frame), 3)
    rows, _ = fc.predict(frame)
    assert len(rows) == n_series * HORIZON

    # The model alone on pre-built windows.
    windows = windows_of(fc, frame, 8 if args.quick else 41)
    model_rows = []
    for bs in (1, 8, 64, 512, len(windows)):
        n = min(len(windows), 64 * bs if bs < 64 else len(windows))
        secs = timed(lambda n=n, bs=bs: predict(fc.model, windows[:n], batch_size=bs), 3)
        model_rows.append((bs, n, n / secs))

    table = [
        ["predict, 1 series per call", "latency median ms", round(float(np.median(lat_ms)), 2)],
        [
            "predict, 1 series per call",
            "latency p95 ms",
            round(float(np.percentile(lat_ms, 95)), 2),
        ],
        ["predict, 1 series per call", "series/s", round(1000 / float(np.mean(lat_ms)), 1)],
        [f"predict, all {n_series} series in 1 call", "seconds", round(all_s, 4)],
        [f"predict, all {n_series} series in 1 call", "series/s", round(n_series / all_s, 1)],
    ]
    speedup = (n_series / all_s) / (1000 / float(np.mean(lat_ms)))
    table.append(["all series in 1 call vs 1 per call", "speed-up x", round(speedup, 1)])
    for bs, n, rate in model_rows:
        table.append([f"training.predict, batch {bs} ({n} windows)", "windows/s", round(rate, 1)])
    columns = ["path", "measure", "value"]
    if args.before and args.before.exists():
        old = {(r[0], r[1]): r[2] for r in json.loads(args.before.read_text())["table"]["rows"]}
        columns.append("before")
        table = [[*r, old.get((r[0], r[1]), "-")] for r in table]
    profile: list[str] = []
    if args.profile:
        profile.append(f"cProfile of predict() on all {n_series} series:")
        profile += top_functions(lambda: fc.predict(frame))
        profile.append("cProfile of predict() on one series:")
        profile += top_functions(lambda: fc.predict(per_frames[0]), 6)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            predict(fc.model, windows[:512], batch_size=512)
        ops = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:6]
        total = sum(e.self_cpu_time_total for e in prof.key_averages()) or 1
        profile.append("torch.profiler of training.predict, batch 512 (self CPU time):")
        profile += [f"{e.key}: {100 * e.self_cpu_time_total / total:.0f} %" for e in ops]
    write_result(
        "inference",
        {
            "title": "Inference: a loaded champion forecasting every series",
            "settings": {
                "data": f"{n_series} real M4 Hourly series (every 4th), 700-960 points",
                "model": f"LSTM hidden 32, 1 layer, window {WINDOW}, horizon {HORIZON}, "
                "residual intervals",
                "train_s": round(fit_s, 1),
                "load_ms": round(load_ms, 1),
                "threads": args.threads,
                "quick": args.quick,
                "load_average_1m_before": round(load_before, 2),
                "load_average_1m_after": round(load_average(), 2),
            },
            "table": {"columns": columns, "rows": table},
            "targets": [],
            "profile": profile,
            "notes": [
                "Latency includes building the panel from the frame, scaling, the model, "
                "inverse scaling and the output frame (what the forecast flow calls).",
                "Timings on a shared 2-core machine are indicative.",
            ],
        },
    )


if __name__ == "__main__":
    main()
