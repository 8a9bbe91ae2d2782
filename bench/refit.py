"""Champions refit on the newest data against the selected, unrefit model (docs/lifecycle.md).

    .venv/bin/python bench/refit.py [--seeds 0,1] [--only glucose|prices] [--threads 1]

For each bundled real data set with the demo's group settings (seqcast.yaml), the data are
cut at T, ``after`` points (one test part) before the end of each series. On the data up to
T every cell of the group is trained and selected as the flow does (its own validation and
test parts, lowest backtest MASE); the selected model is then

* kept as is (what a champion was before refits),
* refit from scratch on every point up to T for the selected run's best epoch count
  (``scratch``),
* fine-tuned from the selected weights for ``--finetune-epochs`` epochs on every point up to T
  (``finetune``),

and all three are scored on the points after T (rolling origins one horizon apart, the
seasonal-naive baseline beside them). Prints one table and writes bench/results/refit.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from flows.series.candidates import score_of
from flows.series.params import ModelGroup
from flows.sources.bundled import bundled_glucose, bundled_stocks
from forecasting.forecaster import GlobalForecaster
from forecasting.panel import PanelConfig, build_panel
from forecasting.refit import RefitMode, refit

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "refit.json"

# The demo's groups (seqcast.yaml), as the flow builds them.
GROUPS = {
    "glucose": dict(series_kind="sensor", horizon=12, window=48, season_length=288,
                    hidden_size=32, num_layers=1, max_epochs=8, windows_per_epoch=8192,
                    batch_size=128, val_size=2000, test_size=480, cells=["lstm", "gru"]),
    "prices": dict(series_kind="price", horizon=5, window=30, season_length=5, hidden_size=32,
                   num_layers=1, max_epochs=8, windows_per_epoch=8192, batch_size=128,
                   val_size=250, test_size=100, cells=["lstm", "gru"]),
}  # fmt: skip
FREQS = {"glucose": "5min", "prices": "B"}


def load(name: str) -> pd.DataFrame:
    """The bundled data set as a long frame (glucose: one sensor; prices: five stocks)."""
    batch = bundled_glucose() if name == "glucose" else bundled_stocks()
    rows = pd.concat(batch.read(100_000))
    frame = pd.DataFrame(
        {
            "series_id": rows["series_id"],
            "ts": pd.to_datetime(rows["ts"], utc=True),
            "value": pd.to_numeric(rows["value"], errors="coerce"),
        }
    ).dropna()
    return frame.drop_duplicates(["series_id", "ts"]).sort_values(["series_id", "ts"])


def after_cut(frame: pd.DataFrame, group: ModelGroup, freq: str) -> tuple[pd.Timestamp, int]:
    """T (``test_size`` grid steps before the newest point) and the grid points after it."""
    step = pd.tseries.frequencies.to_offset(freq)
    cut = pd.Timestamp(frame["ts"].max()) - group.test_size * step
    freqs = {str(s): freq for s in frame["series_id"].unique()}
    panel = build_panel(frame, freqs, group.spec(group.cells[0]).panel)
    # Series too short to train on (the flow leaves them out) are not scored either.
    need = group.window + group.horizon + group.val_size + 2 * group.test_size
    counts = [
        sum(panel.timestamp(i, k) > cut for k in range(max(0, n - 3 * group.test_size), n))
        for i, n in enumerate(panel.lengths)
        if n >= need
    ]
    return cut, int(min(counts))


def scored(f: GlobalForecaster, frame: pd.DataFrame, group: ModelGroup, after: int) -> dict:
    """MASE and sMAPE of ``f`` and seasonal naive on the last ``after`` points of ``frame``."""
    config = PanelConfig(max_fill=group.max_fill, test_size=after, val_size=group.val_size)
    bt = f.evaluate(frame, config)
    return {
        "mase": bt.summary["model"]["mase"],
        "smape": bt.summary["model"]["smape"],
        "seasonal_naive_mase": bt.summary["seasonal_naive"]["mase"],
        "windows": bt.n_windows,
    }


def run_one(
    name: str, full: pd.DataFrame, seed: int, back: int, finetune_epochs: int
) -> dict[str, Any]:
    """One seed at one cut-off: ``back`` test parts before the end of the data, then T."""
    group = ModelGroup(name=name, seed=seed, **GROUPS[name])  # type: ignore[arg-type]
    freq = FREQS[name]
    step = pd.tseries.frequencies.to_offset(freq)
    frame = full[full["ts"] <= full["ts"].max() - back * group.test_size * step]
    cut, after = after_cut(frame, group, freq)
    before = frame[frame["ts"] <= cut]
    freqs = {str(s): freq for s in before["series_id"].unique()}
    fits = []
    for cell in group.cells:
        f = GlobalForecaster(group.spec(cell))
        t0 = time.perf_counter()
        result = f.fit(before, freqs)
        seconds = time.perf_counter() - t0
        fits.append((score_of(f.backtest().summary["model"]), cell, f, result, seconds))
    score, cell, selected, result, seconds = min(fits, key=lambda x: x[0])
    out: dict[str, Any] = {
        "data": name, "seed": seed, "back": back, "cut": cut.isoformat(), "after_points": after,
        "selected": cell, "selected_holdout_mase": score, "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "kept": {**scored(selected, frame, group, after), "fit_s": seconds},
    }  # fmt: skip
    modes: tuple[RefitMode, ...] = ("scratch", "finetune")
    for mode in modes:
        t0 = time.perf_counter()
        refitted, r = refit(selected, result.best_epoch, before, freqs, mode,
                            finetune_epochs=finetune_epochs)  # fmt: skip
        out[mode] = {
            **scored(refitted, frame, group, after),
            "fit_s": time.perf_counter() - t0,
            "epochs": len(r.history),
            "train_windows": refitted.data_stats["train_windows"],
        }
    out["kept"]["train_windows"] = selected.data_stats["train_windows"]
    return out


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| data | T | seed | selected | after T | seasonal naive MASE | kept MASE | scratch MASE "
        "| finetune MASE | selected fit s | scratch fit s | finetune fit s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        k, s, f = r["kept"], r["scratch"], r["finetune"]
        lines.append(
            f"| {r['data']} | {r['cut'][:10]} | {r['seed']} "
            f"| {r['selected']} (best epoch {r['best_epoch']}) "
            f"| {r['after_points']} | {k['seasonal_naive_mase']:.3f} | {k['mase']:.3f} "
            f"| {s['mase']:.3f} | {f['mase']:.3f} | {k['fit_s']:.1f} | {s['fit_s']:.1f} "
            f"| {f['fit_s']:.1f} |"
        )
    return "\n".join(lines)


def summary(rows: list[dict[str, Any]]) -> str:
    """Per data set: mean MASE of each way over cut-offs and seeds, how often the refit
    beat the kept model, and the mean fit seconds."""
    lines = [
        "| data | runs | kept MASE | scratch MASE (wins) | finetune MASE (wins) "
        "| selected fit s | scratch fit s | finetune fit s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in sorted({r["data"] for r in rows}):
        part = [r for r in rows if r["data"] == name]

        def mean(way: str, key: str, part: list[dict[str, Any]] = part) -> float:
            return sum(r[way][key] for r in part) / len(part)

        def wins(way: str, part: list[dict[str, Any]] = part) -> int:
            return sum(r[way]["mase"] < r["kept"]["mase"] for r in part)

        lines.append(
            f"| {name} | {len(part)} | {mean('kept', 'mase'):.4f} "
            f"| {mean('scratch', 'mase'):.4f} ({wins('scratch')}/{len(part)}) "
            f"| {mean('finetune', 'mase'):.4f} ({wins('finetune')}/{len(part)}) "
            f"| {mean('kept', 'fit_s'):.1f} | {mean('scratch', 'fit_s'):.1f} "
            f"| {mean('finetune', 'fit_s'):.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--only", choices=sorted(GROUPS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--finetune-epochs", type=int, default=2)
    parser.add_argument("--cuts", type=int, default=3, help="cut-offs, one test part apart")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    rows = []
    for name in [args.only] if args.only else sorted(GROUPS):
        frame = load(name)
        for back in range(args.cuts):
            for seed in (int(s) for s in args.seeds.split(",")):
                rows.append(run_one(name, frame, seed, back, args.finetune_epochs))
                print(table(rows[-1:]).splitlines()[-1], flush=True)
    print(table(rows))
    print(summary(rows))
    meta = {"threads": args.threads, "finetune_epochs": args.finetune_epochs,
            "load_average_1m_start": load0, "load_average_1m_end": os.getloadavg()[0],
            "wall_s": time.perf_counter() - t0, "torch": torch.__version__}  # fmt: skip
    print(meta)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"settings": meta, "rows": rows}, indent=2, default=float) + "\n")


if __name__ == "__main__":
    main()
