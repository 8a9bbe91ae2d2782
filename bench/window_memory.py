"""Peak memory to build training windows for 10 million points, against materialising them.

    .venv/bin/python bench/window_memory.py [--points 10000000] [--textbook-points 2000000]

Each measurement runs in its own child process: the raw series (1,000 series of float32
values, window 168 + horizon 48) is created first, the kernel's peak-RSS mark is reset, then
the windows are built and the rise of the peak over the resident size before is reported,
relative to the raw series' bytes.

- ``seqcast``: what ``GlobalForecaster.fit`` builds before training: the per-series scaler,
  the scaled float32 copy, and the train/validation :class:`~forecasting.windows.WindowIndex`
  (runs of window starts), wrapped in ``WindowData``.
- ``start arrays``: the same with one int64 start per window (``window_starts``, the layout
  seqcast used before the run index).
- ``textbook``: the ``create_sequences`` loop that copies every window into ``X`` and ``y``
  arrays; measured at ``--textbook-points`` (it needs 216 values per window) and scaled
  linearly to the full size, which is exact for arrays whose size is windows x span.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import numpy as np
from common import peak_rss_mb, reset_peak_rss, rss_mb, target, write_result

WINDOW, HORIZON, N_SERIES = 168, 48, 1000


def make_panel(points: int):  # type: ignore[no-untyped-def]
    import pandas as pd

    from forecasting.panel import Panel

    per = points // N_SERIES
    rng = np.random.default_rng(0)
    values = np.empty(per * N_SERIES, dtype=np.float32)
    hours = np.arange(per)
    for i in range(N_SERIES):  # daily cycle + noise, one series at a time
        values[i * per : (i + 1) * per] = 100 + 10 * np.sin(2 * np.pi * hours / 24) + i
    values += rng.standard_normal(values.size, dtype=np.float32)
    lengths = np.full(N_SERIES, per, dtype=np.int64)
    return Panel(
        series_ids=[f"s{i:04d}" for i in range(N_SERIES)],
        freqs=["h"] * N_SERIES,
        values=values,
        offsets=np.arange(N_SERIES, dtype=np.int64) * per,
        lengths=lengths,
        starts=[pd.Timestamp("2020-01-01", tz="UTC")] * N_SERIES,
        n_filled=0,
        n_missing=0,
    )


def child(mode: str, points: int) -> dict[str, float]:
    import torch

    from forecasting.panel import PanelConfig, chronological_split
    from forecasting.scaling import SeriesScaler, scale_panel
    from forecasting.training import WindowData
    from forecasting.windows import WindowIndex, WindowSpec, window_index, window_starts

    panel = make_panel(points)
    spec = WindowSpec(WINDOW, HORIZON)
    base = rss_mb()
    reset_peak_rss()
    windows = 0
    if mode == "textbook":
        xs, ys = [], []
        for i in range(len(panel.series_ids)):
            v = panel.series_values(i)
            for t in range(len(v) - spec.span + 1):
                xs.append(v[t : t + WINDOW])
                ys.append(v[t + WINDOW : t + spec.span])
        x, y = np.array(xs), np.array(ys)
        windows = len(x) + 0 * len(y)
        del xs, ys
    else:
        split = chronological_split(panel, PanelConfig(test_size=0, val_size=480), spec.span)
        scaler = SeriesScaler.fit(
            panel.series_ids,
            [panel.series_values(i)[: split.val_start[i]] for i in range(len(panel.series_ids))],
        )
        values = torch.from_numpy(scale_panel(panel, scaler))
        if mode == "seqcast":
            train, _ = window_index(panel, split, spec, "train")
            val, _ = window_index(panel, split, spec, "val")
        else:  # one int64 start per window, as before the run index
            train_a, _, _ = window_starts(panel, split, spec, "train")
            val_a, _, _ = window_starts(panel, split, spec, "val")
            train, val = WindowIndex.from_starts(train_a), WindowIndex.from_starts(val_a)
            kept = (train_a, val_a)  # noqa: F841 - the arrays such a loader keeps resident
        data = WindowData(values, train, val, spec)
        windows = len(data.train_starts) + len(data.val_starts)
    return {
        "points": float(panel.values.size),
        "raw_mb": panel.values.nbytes / 2**20,
        "extra_peak_mb": peak_rss_mb() - base,
        "windows": float(windows),
    }


def measure(mode: str, points: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--points", str(points)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, default=10_000_000)
    parser.add_argument("--textbook-points", type=int, default=2_000_000)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", choices=["seqcast", "starts", "textbook"])
    args = parser.parse_args()
    if args.quick:
        args.points, args.textbook_points = 1_000_000, 500_000
    if args.child:
        print(json.dumps(child(args.child, args.points)))
        return
    ours = measure("seqcast", args.points)
    starts = measure("starts", args.points)
    book = measure("textbook", args.textbook_points)
    scale = ours["points"] / book["points"]
    book_full = book["extra_peak_mb"] * scale
    raw = ours["raw_mb"]
    rows = [
        ["seqcast (scaled copy + run index)", f"{ours['points']:,.0f}", f"{ours['windows']:,.0f}",
         f"{ours['extra_peak_mb']:,.0f}", f"{ours['extra_peak_mb'] / raw:.2f}x"],
        ["one int64 start per window", f"{starts['points']:,.0f}", f"{starts['windows']:,.0f}",
         f"{starts['extra_peak_mb']:,.0f}", f"{starts['extra_peak_mb'] / raw:.2f}x"],
        [f"textbook create_sequences (measured at {book['points']:,.0f} points)",
         f"{book['points']:,.0f}", f"{book['windows']:,.0f}", f"{book['extra_peak_mb']:,.0f}",
         f"{book['extra_peak_mb'] / book['raw_mb']:.1f}x"],
        ["textbook, scaled to the full size", f"{ours['points']:,.0f}", "-",
         f"{book_full:,.0f}", f"{book_full / raw:.1f}x"],
    ]  # fmt: skip
    write_result(
        "window_memory",
        {
            "title": "Peak memory to build training windows (window 168 + horizon 48)",
            "settings": {"points": ours["points"], "series": N_SERIES, "raw_mb": round(raw, 1)},
            "table": {
                "columns": ["method", "points", "windows", "peak rise MiB", "x raw series"],
                "rows": rows,
            },
            "targets": [
                target(
                    "peak memory to build windows / raw series size",
                    "< 1.5x",
                    ours["extra_peak_mb"] / raw,
                    1.5,
                    "max",
                ),
            ],
            "profile": [
                "one int64 start per window costs "
                f"{starts['extra_peak_mb'] - ours['extra_peak_mb']:,.0f} MiB more at "
                f"{ours['windows']:,.0f} windows (8 bytes each, 2x the float32 series); "
                "the run index holds one (start, count) pair per gap-free stretch",
                f"materialising: {book_full / ours['extra_peak_mb']:,.0f}x seqcast's peak "
                "(216 float32 per window plus one array object per window during the loop)",
            ],
            "notes": [
                "raw series = the float32 values of every point (what seqcast keeps resident); "
                "peak rise = VmHWM after building minus VmRSS before (Linux clear_refs reset)",
            ],
        },
    )


if __name__ == "__main__":
    main()
