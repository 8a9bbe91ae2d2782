"""M4 Hourly accuracy: one global seqcast model per cell against seasonal naive and Naive2.

Without ``--test`` it trains on each training series minus its last 48 points and scores on
those 48 (the official test horizon is not in ../shared/data). With ``--test FILE`` (the same
wide format, holding the next 48 points of every series, e.g. the official M4 Hourly-test.csv)
it trains on the whole training series and scores on that file.

    .venv/bin/python bench/m4_hourly.py [--cells lstm:2,gru:2,rnn:1] [--test FILE]
    .venv/bin/python bench/m4_hourly.py --members gru:w336:s0,gru:w504:s0,lstm:w168:s0:huber

Prints sMAPE, MASE (m=24) and OWA (the mean of sMAPE and MASE relative to Naive2, as in M4)
for each model, the ensemble of its seeds, and the LSTM+GRU ensemble, with fit and predict
time, and writes them to bench/results/m4_hourly.json. ``--members`` names models that may
differ in cell, window (``wN``), seed (``sN``), loss, hidden size (``hN``) and epochs
(``eN``), and scores each, their median, and
the median of every subset of two or more (up to ``MAX_SUBSET_MEMBERS`` members).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from forecasting.baselines import naive2, seasonal_naive
from forecasting.forecaster import GlobalForecaster
from forecasting.models import RecurrentForecasterConfig
from forecasting.panel import PanelConfig
from forecasting.spec import ForecasterSpec
from forecasting.train_config import LOSS_NAMES
from forecasting.training import TrainConfig

HORIZON, SEASON = 48, 24
DEFAULT_WINDOW, DEFAULT_LOSS, DEFAULT_HIDDEN, DEFAULT_EPOCHS = 336, "mae", 128, 15
MAX_SUBSET_MEMBERS = 10  # 1,013 subsets; beyond that the listing stops being readable
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TRAIN = ROOT.parent / "shared" / "data" / "m4" / "Hourly-train.csv"


def read_wide(path: Path) -> dict[str, np.ndarray]:
    """M4 wide CSV -> {id: values} (trailing empty cells dropped)."""
    frame = pd.read_csv(path)
    ids = frame.iloc[:, 0].astype(str)
    values = frame.iloc[:, 1:].to_numpy(dtype=np.float64)
    return {sid: row[~np.isnan(row)] for sid, row in zip(ids, values, strict=True)}


def long_frame(series: dict[str, np.ndarray]) -> pd.DataFrame:
    """Series on an hourly grid (M4 gives no dates: every series ends at the same hour)."""
    parts = []
    end = pd.Timestamp("2020-01-01", tz="UTC")
    for sid, y in series.items():
        ts = pd.date_range(end=end, periods=len(y), freq="h")
        parts.append(pd.DataFrame({"series_id": sid, "ts": ts, "value": y}))
    return pd.concat(parts, ignore_index=True)


def smape(y: np.ndarray, f: np.ndarray) -> float:
    return float(np.mean(200.0 * np.abs(y - f) / (np.abs(y) + np.abs(f))))


def mase(insample: np.ndarray, y: np.ndarray, f: np.ndarray) -> float:
    return float(np.mean(np.abs(y - f)) / np.mean(np.abs(insample[SEASON:] - insample[:-SEASON])))


@dataclass(frozen=True)
class Member:
    """One model of an ensemble: its cell, input window, seed, loss, hidden size and epochs."""

    cell: str
    window: int
    seed: int
    loss: str = DEFAULT_LOSS
    hidden: int = DEFAULT_HIDDEN
    epochs: int = DEFAULT_EPOCHS

    @property
    def _size(self) -> str:
        """``-h64``, ``-e30``, both or nothing: hidden size and epochs where not the default."""
        hidden = "" if self.hidden == DEFAULT_HIDDEN else f"-h{self.hidden}"
        return hidden + ("" if self.epochs == DEFAULT_EPOCHS else f"-e{self.epochs}")

    @property
    def label(self) -> str:
        loss = "" if self.loss == DEFAULT_LOSS else f" {self.loss}"
        size = self._size.replace("-", " ")
        return f"{self.cell} w{self.window}{size} s{self.seed}{loss}"

    @property
    def cache_name(self) -> str:
        """``{cell}-seed{seed}.npz`` for the default settings (the names runs before
        ``--members`` wrote), else with the window and whatever else differs in the name."""
        if (self.window, self.loss, self._size) == (DEFAULT_WINDOW, DEFAULT_LOSS, ""):
            return f"{self.cell}-seed{self.seed}.npz"
        loss = "" if self.loss == DEFAULT_LOSS else f"-{self.loss}"
        return f"{self.cell}-w{self.window}{self._size}-seed{self.seed}{loss}.npz"


def parse_member(
    text: str, window: int, hidden: int = DEFAULT_HIDDEN, epochs: int = DEFAULT_EPOCHS
) -> Member:
    """``cell[:wWINDOW][:sSEED][:LOSS][:hHIDDEN][:eEPOCHS]`` (or the older ``cell:SEED``).

    Unnamed parts default to ``window``, seed 0, the MAE loss, ``hidden`` and ``epochs``.
    """
    cell, *parts = text.strip().split(":")
    seed, loss = 0, DEFAULT_LOSS
    for part in parts:
        if part.isdigit():
            seed = int(part)
        elif part[:1] == "s" and part[1:].isdigit():
            seed = int(part[1:])
        elif part[:1] == "w" and part[1:].isdigit():
            window = int(part[1:])
        elif part[:1] == "h" and part[1:].isdigit():
            hidden = int(part[1:])
        elif part[:1] == "e" and part[1:].isdigit():
            epochs = int(part[1:])
        elif part in LOSS_NAMES:
            loss = part
        else:
            raise SystemExit(
                f"member {text!r}: cannot read {part!r}; use cell[:wWINDOW][:sSEED][:LOSS]"
                f"[:hHIDDEN][:eEPOCHS] with LOSS one of {', '.join(LOSS_NAMES)}, e.g. gru:w504:s0"
            )
    return Member(cell, window, seed, loss, hidden, epochs)


def spec_for(member: Member, args: argparse.Namespace) -> ForecasterSpec:
    return ForecasterSpec(
        model=RecurrentForecasterConfig(
            cell=member.cell,  # type: ignore[arg-type]
            window=member.window,
            horizon=HORIZON,
            hidden_size=member.hidden,
            num_layers=2,
            dropout=0.1,
            normalize="window",  # each window standardised by its own mean and std
            patch_len=SEASON,  # the encoder reads one day per step
            seasonal_skip=168,  # the output corrects the same hours one week earlier
        ),
        train=TrainConfig(
            max_epochs=member.epochs,
            windows_per_epoch=args.windows_per_epoch,
            batch_size=256,
            learning_rate=3e-3,
            lr_schedule="onecycle",
            loss=member.loss,  # type: ignore[arg-type]
            loss_scale="window",
            patience=member.epochs,  # one-cycle runs its whole schedule
            seed=member.seed,
        ),
        panel=PanelConfig(max_fill=0, test_size=0, val_size=HORIZON),
        season_length=SEASON,
    )


def check_members(members: list[Member], args: argparse.Namespace, shortest: int) -> None:
    """Fail before any training on a member the engine or the shortest series cannot take."""
    longest = shortest - 2 * HORIZON  # one window + horizon, then the validation part
    for member in members:
        try:
            spec_for(member, args)
        except ValueError as err:
            raise SystemExit(f"member {member.label}: {err}") from None
        if member.window > longest:
            raise SystemExit(
                f"member {member.label}: the shortest training series has {shortest} points, "
                f"which allows a window of at most {longest} (window + {HORIZON} horizon + "
                f"{HORIZON} validation); use a window of at most {longest // SEASON * SEASON}"
            )


def train_model(
    member: Member,
    args: argparse.Namespace,
    frame: pd.DataFrame,
    freqs: dict[str, str],
    ids: list[str],
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Fit and forecast one model (or take both from ``--cache``)."""
    cached = args.cache / member.cache_name if args.cache else None
    if cached is not None and cached.exists():
        saved = np.load(cached)
        return dict(zip(ids, saved["forecasts"], strict=True)), json.loads(str(saved["timing"]))
    forecaster = GlobalForecaster(spec_for(member, args))
    load_start = os.getloadavg()[0]
    t0 = time.perf_counter()
    result = forecaster.fit(frame, freqs)
    t1 = time.perf_counter()
    out, skipped = forecaster.predict(frame)
    t2 = time.perf_counter()
    if skipped:
        raise SystemExit(f"{member.label}: series not forecast: {skipped}")
    fc = {str(k): g.sort_values("step")["yhat"].to_numpy() for k, g in out.groupby("series_id")}
    timing = {
        "fit_s": t1 - t0,
        "predict_s": t2 - t1,
        "epochs": float(len(result.history)),
        "best_epoch": float(result.best_epoch),
        "windows_seen": float(result.windows_seen),
        "threads": float(args.threads),
        # The 1-minute load average as the fit began and ended: the cores are shared.
        "load_start": load_start,
        "load_end": os.getloadavg()[0],
    }
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cached, forecasts=np.stack([fc[k] for k in ids]), timing=json.dumps(timing))
    print(f"{member.label}: fit {timing['fit_s']:.0f} s", flush=True)
    return fc, timing


def member_ensembles(
    members: list[Member],
    forecasts: list[dict[str, np.ndarray]],
    timings: list[dict[str, float]],
    ids: list[str],
    score: Callable[[dict[str, np.ndarray]], dict[str, float]],
) -> dict[str, dict[str, float]]:
    """The median of all members, then of every subset of two or more (when few enough).

    Subsets are scored on the same points as everything else: picking the best of them is
    selection on the scored windows, so they are reported, never chosen from here.
    """
    stacked = np.stack([np.stack([f[k] for k in ids]) for f in forecasts])  # [M, S, H]
    n = len(members)
    sizes = range(2, n) if n <= MAX_SUBSET_MEMBERS else range(0)  # proper subsets only
    groups = [tuple(range(n))] + [c for k in sizes for c in itertools.combinations(range(n), k)]
    rows: dict[str, dict[str, float]] = {}
    for group in groups:
        median = np.median(stacked[list(group)], axis=0)  # [S, H]
        names = " + ".join(members[j].label for j in group)
        name = f"median of all {n}" if len(group) == n else f"median of {names}"
        rows[name] = {
            **score(dict(zip(ids, median, strict=True))),
            "fit_s": sum(timings[j]["fit_s"] for j in group),
            "predict_s": sum(timings[j]["predict_s"] for j in group),
            "members": float(len(group)),
        }
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=Path, default=DEFAULT_TRAIN)
    parser.add_argument("--test", type=Path, help="score on this file instead of the last 48")
    parser.add_argument(
        "--cells", default="lstm:2,gru:2,rnn:1", help="cell:models (seeds, median-ensembled)"
    )
    parser.add_argument(
        "--members",
        help="cell[:wWINDOW][:sSEED][:LOSS],... scored alone, as their median and per subset "
        "(instead of --cells)",
    )
    parser.add_argument("--window", type=int, default=DEFAULT_WINDOW)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--windows-per-epoch", type=int, default=25_600)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--cache", type=Path, help="keep each model's forecasts and times here; reuse them"
    )
    parser.add_argument(
        "--train-only",
        metavar="MEMBER",
        help="train this one model (CELL:SEED or a --members entry) into --cache and exit",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "m4_hourly.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not args.train.exists():
        raise SystemExit(f"{args.train}: not found (M4 Hourly-train.csv from ../shared/data)")
    full = read_wide(args.train)
    if args.test:
        test = read_wide(args.test)
        missing = sorted(set(full) - set(test))
        if missing or any(len(v) < HORIZON for v in test.values()):
            raise SystemExit(f"{args.test}: needs {HORIZON} values for every series")
        train, actual = full, {k: test[k][:HORIZON] for k in full}
    else:
        train = {k: v[:-HORIZON] for k, v in full.items()}
        actual = {k: v[-HORIZON:] for k, v in full.items()}
    ids = list(train)
    frame = long_frame(train)
    freqs = dict.fromkeys(ids, "h")

    def score(forecasts: dict[str, np.ndarray]) -> dict[str, float]:
        s = np.mean([smape(actual[k], forecasts[k]) for k in ids])
        m = np.mean([mase(train[k], actual[k], forecasts[k]) for k in ids])
        return {"smape": float(s), "mase": float(m)}

    reference = {k: naive2(train[k], HORIZON, SEASON) for k in ids}
    ref = score(reference)
    rows: dict[str, dict[str, float]] = {
        "Naive2": ref,
        "seasonal naive": score({k: seasonal_naive(train[k], HORIZON, SEASON) for k in ids}),
    }
    per_cell: dict[str, list[dict[str, np.ndarray]]] = {}
    plan = [
        (c.split(":")[0], int(c.split(":")[1]) if ":" in c else 1) for c in args.cells.split(",")
    ]
    defaults = (args.window, args.hidden, args.epochs)

    def cell_member(cell: str, seed: int) -> Member:
        return parse_member(f"{cell}:s{seed}", *defaults)

    members: list[Member] = []
    if args.members:
        members, plan = [parse_member(m, *defaults) for m in args.members.split(",")], []
    if args.train_only:
        if not args.cache:
            raise SystemExit("--train-only needs --cache")
        members, plan = [parse_member(args.train_only, *defaults)], []
    shortest = min(len(v) for v in train.values())
    check_members(members or [cell_member(c, 0) for c, _ in plan], args, shortest)
    if args.train_only:
        train_model(members[0], args, frame, freqs, ids)
        return
    for cell, n_seeds in plan:
        for seed in range(n_seeds):
            fc, timing = train_model(cell_member(cell, seed), args, frame, freqs, ids)
            per_cell.setdefault(cell, []).append(fc)
            rows[f"{cell} seed {seed}"] = {**score(fc), **timing}
            print(f"{cell} seed {seed}: {rows[f'{cell} seed {seed}']}", flush=True)
        if n_seeds > 1:
            ens = {k: np.median([f[k] for f in per_cell[cell]], axis=0) for k in ids}
            seeds = [rows[f"{cell} seed {s}"] for s in range(n_seeds)]
            rows[f"{cell} x{n_seeds}"] = {
                **score(ens),
                "fit_s": sum(r["fit_s"] for r in seeds),
                "predict_s": sum(r["predict_s"] for r in seeds),
            }
    member_fc, member_timing = [], []
    for member in members:
        fc, timing = train_model(member, args, frame, freqs, ids)
        member_fc.append(fc)
        member_timing.append(timing)
        rows[member.label] = {**score(fc), **timing}
    if len(members) > 1:
        rows.update(member_ensembles(members, member_fc, member_timing, ids, score))
    if {"lstm", "gru"} <= set(per_cell):
        both = per_cell["lstm"] + per_cell["gru"]
        ens = {k: np.median([f[k] for f in both], axis=0) for k in ids}
        cells = [r for name, r in rows.items() if " seed " in name and name[:3] in ("lst", "gru")]
        rows["lstm+gru"] = {
            **score(ens),
            "fit_s": sum(r["fit_s"] for r in cells),
            "predict_s": sum(r["predict_s"] for r in cells),
        }
    for r in rows.values():
        r["owa"] = 0.5 * (r["smape"] / ref["smape"] + r["mase"] / ref["mase"])
    mode = f"test file {args.test}" if args.test else "last 48 points of each training series"
    print(f"\nM4 Hourly, {len(ids)} series, scored on {mode}")
    width = max(18, *(len(name) + 2 for name in rows))
    print(f"{'method':<{width}}{'sMAPE':>8}{'MASE':>8}{'OWA':>8}{'fit s':>9}{'predict s':>11}")
    for name, r in rows.items():
        fit_s = f"{r['fit_s']:.0f}" if "fit_s" in r else "-"
        pred_s = f"{r['predict_s']:.1f}" if "predict_s" in r else "-"
        line = f"{r['smape']:8.3f}{r['mase']:8.3f}{r['owa']:8.3f}{fit_s:>9}{pred_s:>11}"
        print(f"{name:<{width}}{line}")
    if any(name.startswith("median of ") and "+" in name for name in rows):
        print("(subset medians are scored on the same points: the best of them is selected on")
        print(" these windows, not a held-out result)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"mode": mode, "args": vars(args), "rows": rows}, indent=1, default=str)
    )


if __name__ == "__main__":
    main()
