"""What every performance bench shares: memory probes, the machine's load, result files.

Each bench script writes one JSON file under ``bench/results/perf/`` with :func:`write_result`;
``bench/run_all.py`` (``make bench``) renders them into bench/RESULTS.md and one plot. Times
are only compared as ratios measured in the same run: absolute seconds vary between machines.

Result file fields:
    bench: short name (the file is ``<bench>.json``).
    title: one line for the RESULTS.md heading.
    settings: what was run (sizes, threads, versions) as a flat dict.
    table: {"columns": [...], "rows": [[...], ...]} rendered as a Markdown table.
    targets: [{"name", "target" (text), "value", "threshold", "direction" ("min": value must
        be >= threshold, "max": value must be <= threshold), "unit", "met"}].
    profile: lines saying what the profile showed (top functions / operators and shares).
    notes: free lines (caveats, what was skipped and why).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "bench" / "results" / "perf"
M4_TRAIN = ROOT.parent / "shared" / "data" / "m4" / "Hourly-train.csv"

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# As the seqcast CLI does before any torch work (see forecasting.device.flush_denormals).
from forecasting.device import flush_denormals  # noqa: E402

flush_denormals()


def rss_mb() -> float:
    """Current resident set size of this process, MiB."""
    return _status_kib("VmRSS") / 1024


def peak_rss_mb() -> float:
    """Peak resident set size since the start (or the last :func:`reset_peak_rss`), MiB."""
    return _status_kib("VmHWM") / 1024


def reset_peak_rss() -> None:
    """Reset the kernel's peak-RSS mark of this process (Linux: clear_refs 5)."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {key}")


def load_average() -> float:
    """One-minute load average (how busy the shared machine was during a measurement)."""
    return os.getloadavg()[0]


def machine() -> dict[str, Any]:
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average_1m": round(load_average(), 2),
    }


def target(
    name: str, goal: str, value: float, threshold: float, direction: str, unit: str = "x"
) -> dict[str, Any]:
    """One target with whether it was met (direction ``min``: value >= threshold)."""
    if direction not in ("min", "max"):
        raise ValueError(f"direction must be min or max, got {direction!r}")
    met = value >= threshold if direction == "min" else value <= threshold
    return {
        "name": name,
        "target": goal,
        "value": float(value),
        "threshold": float(threshold),
        "direction": direction,
        "unit": unit,
        "met": bool(met),
    }


def write_result(bench: str, result: dict[str, Any], out_dir: Path | None = None) -> Path:
    """Write ``result`` (see the module docstring) as ``<out_dir>/<bench>.json``."""
    out_dir = out_dir or RESULTS_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {
        "bench": bench,
        "finished_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine(),
        **result,
    }
    path = out_dir / f"{bench}.json"
    # One top-level key per line: readable in a diff, short enough to review.
    body = ",\n".join(f"{json.dumps(k)}: {json.dumps(v, default=str)}" for k, v in payload.items())
    path.write_text("{\n" + body + "\n}\n")
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}", flush=True)
    return path


class Timer:
    """``with Timer() as t: ...`` then ``t.seconds``."""

    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start
