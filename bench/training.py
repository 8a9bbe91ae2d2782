"""Training throughput and time-to-accuracy against NeuralForecast and Darts; loop overhead.

    .venv/bin/python bench/training.py [--steps 2000] [--batch 32] [--threads 2] [--quick]

Same data (M4 Hourly, each series less its last 48 points; scored on those 48), same
architecture (2-layer LSTM, hidden 128, input 168, horizon 48), same number of optimizer steps
and batch size for seqcast, NeuralForecast's LSTM and Darts' BlockRNNModel. The peers live in
their own virtual environment (bench/.peers-venv, created here on first use with pinned
versions; never project dependencies) and run as subprocesses of bench/peer_fit.py.

Measured, one after the other in this run (times only compared as ratios):
- fit and predict wall time, windows per second (steps x batch / fit time), sMAPE/MASE/OWA;
- time-to-accuracy: seqcast's training time until its held-out sMAPE first reaches the best
  peer's (evaluated after every epoch with the clock stopped), at equal settings and with the
  engine's recommended M4 settings (one day per recurrent step, per-window normalisation,
  seasonal skip, batch 256, one-cycle);
- overhead: seqcast's training loop (``forecasting.training.fit``) against a bare loop that
  feeds pre-built tensors into an ``nn.LSTM`` of the same size, interleaved twice;
- a torch.profiler table of seqcast's training steps.

Writes bench/results/perf/training.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import M4_TRAIN, RESULTS_DIR, ROOT, Timer, target, write_result
from m4_hourly import long_frame, mase, read_wide, smape
from torch import nn

from forecasting.baselines import naive2
from forecasting.forecaster import GlobalForecaster
from forecasting.models import RecurrentForecasterConfig
from forecasting.panel import PanelConfig
from forecasting.spec import ForecasterSpec
from forecasting.training import TrainConfig

HORIZON, WINDOW, SEASON = 48, 168, 24
PEERS_VENV = ROOT / "bench" / ".peers-venv"
# The peers and the versions measured; torch is the project's own pin (a CPU wheel here).
PEER_PINS = ["torch==2.13.0", "neuralforecast==3.3.0", "darts==0.48.1", "pytorch-lightning==2.6.6"]


def ensure_peers_venv(venv: Path = PEERS_VENV) -> Path:
    """Create the peers' virtual environment once (pinned versions); return its python."""
    python = venv / "bin" / "python"
    stamp = venv / ".pins"
    if python.exists() and stamp.exists() and stamp.read_text() == " ".join(PEER_PINS):
        return python
    print(f"installing {' '.join(PEER_PINS)} into {venv} (once, ~2 minutes)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--upgrade", "pip>=24"], check=True)
    subprocess.run([*pip, *PEER_PINS], check=True)
    stamp.write_text(" ".join(PEER_PINS))
    return python


class Scorer:
    """sMAPE / MASE / OWA on the held-out 48 points, relative to Naive2 as in M4."""

    def __init__(self, train: dict[str, np.ndarray], actual: dict[str, np.ndarray]) -> None:
        self.train, self.actual, self.ids = train, actual, list(train)
        self.ref = self.raw({k: naive2(train[k], HORIZON, SEASON) for k in self.ids})

    def raw(self, forecasts: dict[str, np.ndarray]) -> dict[str, float]:
        s = np.mean([smape(self.actual[k], forecasts[k]) for k in self.ids])
        m = np.mean([mase(self.train[k], self.actual[k], forecasts[k]) for k in self.ids])
        return {"smape": float(s), "mase": float(m)}

    def __call__(self, forecasts: dict[str, np.ndarray]) -> dict[str, float]:
        r = self.raw(forecasts)
        r["owa"] = 0.5 * (r["smape"] / self.ref["smape"] + r["mase"] / self.ref["mase"])
        return r


def equal_spec(steps: int, batch: int, epochs: int, seed: int = 0) -> ForecasterSpec:
    """The peers' architecture and budget in seqcast's terms (its own loss and optimiser)."""
    return ForecasterSpec(
        model=RecurrentForecasterConfig(
            cell="lstm",
            window=WINDOW,
            horizon=HORIZON,
            hidden_size=128,
            num_layers=2,
            dropout=0.0,
            normalize="window",
        ),
        train=TrainConfig(
            max_epochs=epochs,
            batch_size=batch,
            windows_per_epoch=batch * (steps // epochs),
            max_val_windows=512,
            patience=epochs,
            seed=seed,
        ),
        panel=PanelConfig(max_fill=0, test_size=0, val_size=HORIZON),
        season_length=SEASON,
    )


def recommended_spec(epochs: int, windows_per_epoch: int, seed: int = 0) -> ForecasterSpec:
    """The engine's M4 settings (bench/m4_hourly.py) with a short one-cycle schedule."""
    return ForecasterSpec(
        model=RecurrentForecasterConfig(
            cell="lstm",
            window=336,
            horizon=HORIZON,
            hidden_size=128,
            num_layers=2,
            dropout=0.1,
            normalize="window",
            patch_len=SEASON,
            seasonal_skip=168,
        ),
        train=TrainConfig(
            max_epochs=epochs,
            batch_size=256,
            windows_per_epoch=windows_per_epoch,
            learning_rate=3e-3,
            lr_schedule="onecycle",
            loss_scale="window",
            patience=epochs,
            max_val_windows=1024,
            seed=seed,
        ),
        panel=PanelConfig(max_fill=0, test_size=0, val_size=HORIZON),
        season_length=SEASON,
    )


def run_seqcast(
    spec: ForecasterSpec, data: dict[str, Any], scorer: Scorer, track: bool
) -> dict[str, Any]:
    """Fit (scoring the held-out points after each epoch with the clock stopped when
    ``track``), then predict; return times, windows/s, accuracy and the trajectory."""
    forecaster = GlobalForecaster(spec)
    paused = 0.0
    trajectory: list[dict[str, float]] = []
    t_start = time.perf_counter()

    def evaluate(epoch: int, metrics: dict[str, float]) -> None:
        nonlocal paused
        t_in = time.perf_counter()
        out, _ = forecaster.predict(data["frame"])
        fc = {str(k): g.sort_values("step")["yhat"].to_numpy() for k, g in out.groupby("series_id")}
        trajectory.append({"epoch": epoch, "train_s": t_in - t_start - paused, **scorer(fc)})
        forecaster.model.train()
        paused += time.perf_counter() - t_in

    with Timer() as fit_t:
        result = forecaster.fit(data["frame"], data["freqs"], callbacks=[evaluate] if track else [])
    fit_s = fit_t.seconds - paused
    with Timer() as pred_t:
        out, skipped = forecaster.predict(data["frame"])
    if skipped:
        raise SystemExit(f"series not forecast: {skipped}")
    fc = {str(k): g.sort_values("step")["yhat"].to_numpy() for k, g in out.groupby("series_id")}
    steps = result.windows_seen // spec.train.batch_size
    return {
        "fit_s": fit_s,
        "loop_s": result.seconds - paused,
        "predict_s": pred_t.seconds,
        "steps": steps,
        "batch": spec.train.batch_size,
        "windows_per_s": result.windows_seen / fit_s,
        "loop_windows_per_s": result.windows_seen / (result.seconds - paused),
        "trajectory": trajectory,
        **scorer(fc),
    }


def run_peer(python: Path, peer: str, args: argparse.Namespace, scorer: Scorer) -> dict[str, Any]:
    out = RESULTS_DIR / "work" / peer
    cmd = [str(python), str(ROOT / "bench" / "peer_fit.py"), peer, "--train", str(args.train)]
    cmd += ["--out", str(out), "--steps", str(args.steps), "--batch", str(args.batch)]
    cmd += ["--threads", str(args.threads), "--series", str(args.series)]
    subprocess.run(cmd, check=True)
    info = json.loads(out.with_suffix(".json").read_text())
    saved = np.load(out.with_suffix(".npz"))
    fc = dict(zip([str(i) for i in saved["ids"]], saved["forecasts"], strict=True))
    windows = info["steps"] * info["batch"]
    return {
        **info,
        "windows_per_s": windows / info["fit_s"],
        "loop_windows_per_s": windows / info["loop_s"],
        **scorer(fc),
    }


def bare_loop(
    x: torch.Tensor, y: torch.Tensor, steps: int, batch: int, device: str = "cpu"
) -> float:
    """Pre-built [K, 168, 1] / [K, 48] tensors into nn.LSTM + Linear: windows per second.

    On CUDA the tensors are resident on the device and the step runs under the same bf16
    autocast as seqcast (cuDNN LSTM); the clock stops after a final synchronise.
    """
    from forecasting.device import autocast_context

    dev = torch.device(device)
    torch.manual_seed(0)
    lstm = nn.LSTM(1, 128, num_layers=2, batch_first=True).to(dev)
    head = nn.Linear(128, HORIZON).to(dev)
    params = [*lstm.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=1e-3)
    x, y = x.to(dev), y.to(dev)
    t0 = time.perf_counter()
    for i in range(steps):
        j = (i * batch) % (len(x) - batch)
        with autocast_context(dev):
            out, _ = lstm(x[j : j + batch])
            pred = head(out[:, -1])
        loss = (pred.float() - y[j : j + batch]).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - t0)


def prebuilt_windows(data: dict[str, Any], n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n random training windows of the M4 series, materialised once (z-scored per series)."""
    rng = np.random.default_rng(0)
    series = list(data["train"].values())
    xs, ys = [], []
    for k in rng.integers(0, len(series), n):
        s = series[k]
        s = (s - s.mean()) / (s.std() + 1e-8)
        t = rng.integers(0, len(s) - WINDOW - HORIZON + 1)
        xs.append(s[t : t + WINDOW])
        ys.append(s[t + WINDOW : t + WINDOW + HORIZON])
    x = torch.tensor(np.array(xs), dtype=torch.float32).unsqueeze(-1)
    return x, torch.tensor(np.array(ys), dtype=torch.float32)


def overhead(data: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """seqcast's loop vs the bare loop, interleaved (bare, seqcast, bare, seqcast)."""
    x, y = prebuilt_windows(data, args.overhead_steps * args.batch)
    spec = equal_spec(args.overhead_steps, args.batch, 1)
    bare, ours = [], []
    for _ in range(2):
        bare.append(bare_loop(x, y, args.overhead_steps, args.batch))
        forecaster = GlobalForecaster(spec)
        result = forecaster.fit(data["frame"], data["freqs"])
        ours.append(result.windows_seen / result.seconds)
        print(f"overhead: bare {bare[-1]:.0f} w/s, seqcast loop {ours[-1]:.0f} w/s", flush=True)
    return {"bare": bare, "seqcast": ours, "ratio": sum(ours) / sum(bare)}


def profile_steps(data: dict[str, Any], args: argparse.Namespace, rows: int = 8) -> list[str]:
    """torch.profiler over a short seqcast fit: the operators with the most self CPU time."""
    from torch.profiler import ProfilerActivity, profile

    forecaster = GlobalForecaster(equal_spec(40, args.batch, 1))
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        forecaster.fit(data["frame"], data["freqs"])
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1
    return [
        f"{e.key}: {100 * e.self_cpu_time_total / total:.1f}% of self CPU time ({e.count} calls)"
        for e in events[:rows]
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=Path, default=M4_TRAIN)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=8, help="seqcast epochs over --steps")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--series", type=int, default=0, help="first N series (0: all 414)")
    parser.add_argument("--overhead-steps", type=int, default=300)
    parser.add_argument("--skip-peers", action="store_true")
    parser.add_argument("--quick", action="store_true", help="smoke run: 40 series, few steps")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.series, args.epochs, args.overhead_steps = 40, 40, 2, 20
    if not args.train.exists():
        raise SystemExit(f"{args.train}: not found (M4 Hourly-train.csv from ../shared/data)")
    torch.set_num_threads(args.threads)
    full = read_wide(args.train)
    if args.series:
        full = dict(list(full.items())[: args.series])
    train = {k: v[:-HORIZON] for k, v in full.items()}
    actual = {k: v[-HORIZON:] for k, v in full.items()}
    scorer = Scorer(train, actual)
    data = {"frame": long_frame(train), "freqs": dict.fromkeys(train, "h"), "train": train}
    rows: dict[str, dict[str, Any]] = {}
    if not args.skip_peers:
        python = ensure_peers_venv()
        for peer in ("neuralforecast", "darts"):
            rows[peer] = run_peer(python, peer, args, scorer)
            print(f"{peer}: {rows[peer]}", flush=True)
    rows["seqcast"] = run_seqcast(
        equal_spec(args.steps, args.batch, args.epochs), data, scorer, True
    )
    print(f"seqcast: {rows['seqcast']}", flush=True)
    rec_epochs = 2 if args.quick else 12
    rows["seqcast recommended"] = run_seqcast(
        recommended_spec(rec_epochs, 4 * 256 if args.quick else 25_600), data, scorer, True
    )
    print(f"seqcast recommended: {rows['seqcast recommended']}", flush=True)
    over = overhead(data, args)
    prof = profile_steps(data, args)
    write_training(rows, over, prof, scorer, args)


def write_training(
    rows: dict[str, dict[str, Any]],
    over: dict[str, Any],
    prof: list[str],
    scorer: Scorer,
    args: argparse.Namespace,
) -> None:
    peers = {k: v for k, v in rows.items() if k in ("neuralforecast", "darts")}
    table_rows = [["Naive2", "-", "-", "-", "-", "-", *_acc({**scorer.ref, "owa": 1.0}), "-"]]
    for name, r in rows.items():
        table_rows.append(
            [name, r.get("version", "-"), r["steps"], r["batch"], f"{r['fit_s']:.1f}",
             f"{r['windows_per_s']:.0f}", *_acc(r), f"{r['predict_s']:.2f}"]
        )  # fmt: skip
    targets, notes = [], []
    ours = rows["seqcast"]
    if peers:
        fastest = max(peers.values(), key=lambda r: r["windows_per_s"])
        best = min(peers.values(), key=lambda r: r["smape"])
        targets.append(target(
            "training windows/s vs the faster peer, equal settings",
            ">= 1.0x", ours["windows_per_s"] / fastest["windows_per_s"], 1.0, "min",
        ))  # fmt: skip
        for name in ("seqcast", "seqcast recommended"):
            reached = [p for p in rows[name]["trajectory"] if p["smape"] <= best["smape"]]
            t_reach = reached[0]["train_s"] if reached else float("inf")
            notes.append(
                f"{name} reached the best peer's sMAPE {best['smape']:.3f} after "
                f"{t_reach:.1f} s of training"
                if reached
                else f"{name} did not reach the best peer's sMAPE {best['smape']:.3f} "
                "within its budget"
            )
            targets.append(target(
                f"time to the best peer's sMAPE / faster peer's fit time ({name})",
                "<= 0.5x", t_reach / fastest["fit_s"], 0.5, "max",
            ))  # fmt: skip
    targets.append(target(
        "seqcast training loop vs bare nn.LSTM loop (windows/s)", ">= 0.9x",
        over["ratio"], 0.9, "min",
    ))  # fmt: skip
    trajectories = {k: rows[k]["trajectory"] for k in ("seqcast", "seqcast recommended")}
    write_result("training", {
        "title": "Training throughput and time-to-accuracy vs NeuralForecast and Darts (M4 Hourly)",
        "settings": {
            "series": len(scorer.ids), "steps": args.steps, "batch": args.batch,
            "threads": args.threads, "architecture": "LSTM 2 x 128, input 168, horizon 48",
        },
        "table": {
            "columns": ["model", "version", "steps", "batch", "fit s", "windows/s", "sMAPE",
                        "MASE", "OWA", "predict s"],
            "rows": table_rows,
        },
        "targets": targets,
        "profile": prof,
        "notes": notes,
        "rows": rows,
        "trajectories": trajectories,
        "overhead": over,
    })  # fmt: skip


def _acc(r: dict[str, Any]) -> list[str]:
    return [f"{r['smape']:.3f}", f"{r['mase']:.3f}", f"{r['owa']:.3f}"]


if __name__ == "__main__":
    main()
