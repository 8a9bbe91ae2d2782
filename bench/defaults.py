"""Which derivation rules to use: candidate rule sets on real series of seven frequencies.

For every data set and rule set, one LSTM (``GlobalForecaster``) is fitted twice:

* selection: on each series less its last ``test_size`` points, scored on the last
  ``test_size`` points of what remains (the validation windows). Rules are chosen on these.
* held out: on the whole series, scored on the last ``test_size`` points (never used to
  choose anything).

Both beside the seasonal-naive and naive baselines the backtest computes on the same windows.
``--cache FILE`` keeps every result keyed by data set, phase and settings (training is
deterministic for a thread count), so a rerun only fits what is new.

    .venv/bin/python bench/defaults.py            # the full table (about 15 minutes, 1 thread)
    .venv/bin/python bench/defaults.py --quick    # a smoke run: small subsets, few epochs
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from forecasting import defaults as defaults  # noqa: E402
from forecasting.forecaster import GlobalForecaster  # noqa: E402
from forecasting.models import RecurrentForecasterConfig  # noqa: E402
from forecasting.panel import PanelConfig, build_panel  # noqa: E402
from forecasting.spec import ForecasterSpec  # noqa: E402
from forecasting.training import TrainConfig  # noqa: E402

M4_TRAIN = ROOT.parent / "shared" / "data" / "m4" / "Hourly-train.csv"
# ModelGroup's code defaults but for season and split, which the data must fix (480 validation
# points fit no yearly series) and which keep every rule set on the same windows.
CODE_DEFAULTS: dict[str, object] = {
    "window": 48, "normalize": "level", "patch_len": 1, "seasonal_skip": 0,
    "loss_scale": "none", "lr_schedule": "plateau", "learning_rate": 2e-3, "max_epochs": 20,
    "patience": 3, "batch_size": 256, "windows_per_epoch": 8192,
}  # fmt: skip
Frame = pd.DataFrame


def _bokeh(name: str) -> Path:
    return Path(str(resources.files("bokeh_sampledata") / "_data" / name))


def _long(ids: pd.Series, ts: pd.Series, values: pd.Series) -> Frame:
    frame = pd.DataFrame({"series_id": ids.astype(str), "ts": ts, "value": values})
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame.dropna(subset=["value"]).reset_index(drop=True)


def m4_hourly(n_series: int) -> Frame:
    """A seeded subset of M4 Hourly on an hourly grid (M4 gives no dates)."""
    wide = pd.read_csv(M4_TRAIN)
    rows = np.sort(np.random.default_rng(0).choice(len(wide), n_series, replace=False))
    parts = []
    for _, row in wide.iloc[rows].iterrows():
        y = row.iloc[1:].dropna().to_numpy(dtype=np.float64)
        ts = pd.date_range(end="2020-01-01", periods=len(y), freq="h", tz="UTC")
        parts.append(pd.DataFrame({"series_id": str(row.iloc[0]), "ts": ts, "value": y}))
    return pd.concat(parts, ignore_index=True)


def glucose(_: int) -> Frame:
    """The CGM readings up to the end of their last gap-free stretch of 1,000+ points: the
    backtest needs a season (288) of clean history before each origin, which the last 2.6
    days (stretches of 111, 519 and 106 readings) cannot give."""
    raw = pd.read_csv(_bokeh("CGM.csv.gz"))
    frame = _long(pd.Series("cgm", index=raw.index), raw["datetime"], raw["glucose"])
    grid = build_panel(frame, {"cgm": "5min"}, PanelConfig())
    values, runs = grid.series_values(0), defaults.gap_free_runs(grid.series_values(0))
    ends = np.flatnonzero(np.isfinite(values[:-1]) & ~np.isfinite(values[1:]))  # run ends
    end = [e for e, r in zip(ends, runs, strict=False) if r >= 1000][-1]
    return frame[frame["ts"] <= grid.timestamp(0, int(end))].reset_index(drop=True)


def stocks(_: int) -> Frame:
    raw = pd.read_csv(_bokeh("stocks.csv.gz"))
    return _long(raw["Ticker"], raw["Date"], raw["Adj Close"])


def sea_temperature(_: int) -> Frame:
    raw = pd.read_csv(_bokeh("sea_surface_temperature.csv.gz"))
    return _long(pd.Series("sst", index=raw.index), raw.iloc[:, 0], raw.iloc[:, 1])


def weather(_: int) -> Frame:
    raw = pd.read_csv(_bokeh("lincoln_weather.csv")).melt("DATE", ["TMAX", "TMIN"])
    return _long(raw["variable"], raw["DATE"], raw["value"].astype(float))


def unemployment(_: int) -> Frame:
    raw = pd.read_csv(_bokeh("unemployment1948.csv")).drop(columns="Annual").melt("Year")
    ts = pd.to_datetime(raw["Year"].astype(str) + "-" + raw["variable"], format="%Y-%b")
    return _long(pd.Series("us", index=raw.index), ts, raw["value"]).sort_values("ts")


def emissions(_: int) -> Frame:
    raw = pd.read_csv(_bokeh("emissions.csv.gz"))
    ts = pd.to_datetime(raw["year"].astype(int).astype(str) + "-01-01")
    return _long(raw["country"], ts, raw["emissions"])


# name -> (loader, freq, horizon, what it is)
DATASETS: dict[str, tuple[Callable[[int], Frame], str, int, str]] = {
    "m4-hourly": (m4_hourly, "h", 48, "M4 Hourly, seeded subset"),
    "glucose": (glucose, "5min", 12, "CGM glucose sensor (bokeh CGM)"),
    "sea-temp": (sea_temperature, "30min", 48, "sea surface temperature (bokeh)"),
    "stocks": (stocks, "B", 5, "adjusted close, 5 tickers (bokeh stocks)"),
    "weather": (weather, "D", 7, "Lincoln 2016 TMAX/TMIN (bokeh lincoln_weather)"),
    "unemployment": (unemployment, "MS", 12, "US unemployment 1948-2016 (bokeh)"),
    "emissions": (emissions, "YS", 6, "CO2 emissions per country (bokeh emissions)"),
}


def shape_of(frame: Frame, freq: str) -> tuple[dict[str, int], dict[str, list[int]]]:
    """Points per series on the grid and their gap-free stretches (gaps of 3 filled)."""
    ids = frame["series_id"].unique()
    panel = build_panel(frame, dict.fromkeys(ids, freq), PanelConfig())
    lengths = dict(zip(panel.series_ids, panel.lengths.tolist(), strict=True))
    index = {s: i for i, s in enumerate(panel.series_ids)}
    return lengths, {s: defaults.gap_free_runs(panel.series_values(index[s])) for s in lengths}


def derive(frame: Frame, freq: str, horizon: int, overrides: dict, seasonal: bool | None = True
           ) -> defaults.DerivedSettings:  # fmt: skip
    """The derivation on this frame; ``seasonal=None`` decides it from the training parts."""
    lengths, runs = shape_of(frame, freq)
    if seasonal is None:
        v = defaults.derive_settings(freq, horizon, lengths, overrides, runs=runs).values()
        train = truncate(frame, int(v["val_size"]) + int(v["test_size"]))
        values = [g["value"].to_numpy() for _, g in train.sort_values("ts").groupby("series_id")]
        seasonal = defaults.seasonal_naive_wins(values, int(v["season_length"]), horizon)
    return defaults.derive_settings(freq, horizon, lengths, overrides, runs=runs, seasonal=seasonal)


def spec_from(derived: defaults.DerivedSettings, hidden: int) -> ForecasterSpec:
    """The ForecasterSpec a model group with these settings builds (as ModelGroup.spec)."""
    v = derived.values()
    return ForecasterSpec(
        model=RecurrentForecasterConfig(
            cell="lstm", window=v["window"], horizon=derived.horizon, hidden_size=hidden,
            num_layers=2, dropout=0.1, normalize=v["normalize"], patch_len=v["patch_len"],
            seasonal_skip=v["seasonal_skip"],
        ),
        train=TrainConfig(
            max_epochs=v["max_epochs"], batch_size=v["batch_size"],
            learning_rate=v["learning_rate"], patience=v["patience"],
            windows_per_epoch=v["windows_per_epoch"], lr_schedule=v["lr_schedule"],
            loss_scale=v["loss_scale"], restore=v.get("restore", "best"),
        ),
        panel=PanelConfig(val_size=v["val_size"], test_size=v["test_size"]),
        season_length=v["season_length"],
    )  # fmt: skip


def rule_sets(frame: Frame, freq: str, horizon: int) -> dict[str, dict[str, object]]:
    """Candidate rules as overrides of the derivation (the empty one is the derivation)."""
    base = derive(frame, freq, horizon, {}).values()
    m, w = int(base["season_length"]), int(base["window"])
    skip = int(base["seasonal_skip"])
    short = max(3 * m, skip, m * -(-2 * horizon // m))  # 3 seasons instead of 7
    sets: dict[str, dict[str, object]] = {"code": dict(CODE_DEFAULTS), "seasonal": {}}
    if short < w:
        sets["3-seasons"] = {"window": short}
    sets["level+skip"] = {"normalize": "level"}
    sets["window,no-skip"] = {"seasonal_skip": 0}
    sets["level,no-skip"] = {"normalize": "level", "seasonal_skip": 0}
    sets["derived"] = {}  # the final rule: seasonal or not, decided from the training part
    # What else was tried on top of the final rule (only where named with --rules):
    epochs = int(base["max_epochs"]) * 5 // 2
    sets["derived+2.5x-steps"] = {"max_epochs": epochs, "patience": epochs}
    sets["derived+plateau"] = {"lr_schedule": "plateau"}
    sets["derived+last"] = {"restore": "last"}  # the last epoch's weights, not the best's
    sets["derived+significant"] = {"restore": "significant"}
    return sets


def truncate(frame: Frame, points: int) -> Frame:
    """Each series less its last ``points`` rows (the held-out test part)."""
    order = frame.sort_values("ts").groupby("series_id").cumcount(ascending=False)
    return frame[order.reindex(frame.index) >= points].reset_index(drop=True)


def fit_and_score(frame: Frame, freq: str, derived: defaults.DerivedSettings, hidden: int) -> dict:
    """Fit one LSTM with these settings; backtest it beside the baselines."""
    forecaster = GlobalForecaster(spec_from(derived, hidden))
    t0 = time.perf_counter()
    result = forecaster.fit(frame, dict.fromkeys(frame["series_id"].unique(), freq))
    seconds = time.perf_counter() - t0
    summary = forecaster.backtest().summary
    row = {f"{m}_{k}": summary[m][k] for m in summary for k in ("mase", "smape")}
    return {**row, "fit_s": seconds, "epochs": len(result.history)}


def measure(name: str, args: argparse.Namespace, cache: dict[str, dict]) -> list[dict]:
    """Every rule set on one data set, selection and held-out phases (cached by settings)."""
    loader, freq, horizon, what = DATASETS[name]
    full = loader(args.m4_series)
    test = int(derive(full, freq, horizon, {}).values()["test_size"])
    selection = truncate(full, test)
    sets = rule_sets(selection, freq, horizon)
    rows: list[dict] = []
    for phase, frame in (("validation", selection), ("test", full)):
        seen: dict[str, str] = {}
        for rules, overrides in sets.items():
            if rules.startswith("derived+") and rules not in (args.rules or "").split(","):
                continue
            if args.rules and rules not in args.rules.split(","):
                continue
            base = {"data": name, "what": what, "freq": freq, "horizon": horizon, "rules": rules}
            base |= {"phase": phase, "series": frame["series_id"].nunique()}
            seasonal = None if rules.startswith("derived") else True
            try:
                derived = derive(frame, freq, horizon, {**overrides, **args.force}, seasonal)
            except defaults.DefaultsError as exc:
                rows.append({**base, "error": str(exc)[:160]})
                continue
            v = derived.values()
            key = json.dumps(
                [name, phase, args.hidden, args.m4_series, v], default=str, sort_keys=True
            )
            if key not in cache and args.table_only:
                raise SystemExit(
                    f"{name} {rules} {phase}: not in --cache; run without --table-only"
                )
            if key not in cache:
                cache[key] = fit_and_score(frame, freq, derived, args.hidden)
                if args.cache:
                    args.cache.write_text(json.dumps(cache, indent=1))
            base |= {"window": v["window"], "usable": derived.usable, "same_as": seen.get(key)}
            base |= {k: v[k] for k in ("normalize", "seasonal_skip", "patch_len")}
            seen.setdefault(key, rules)
            rows.append({**base, **cache[key]})
            print(json.dumps(rows[-1], default=str), flush=True)
    return rows


def table(rows: list[dict], phase: str) -> str:
    """One Markdown table per phase: model vs seasonal naive vs naive, MASE and sMAPE."""
    lines = [
        "| data | freq | H | series (usable) | rules | window, norm, skip | MASE model | s-naive "
        "| naive | sMAPE model | s-naive | naive | fit s |",
        "|" + "---|" * 13,
    ]
    for r in (r for r in rows if r["phase"] == phase):
        start = f"| {r['data']} | {r['freq']} | {r['horizon']} | {r['series']}"
        if "error" in r:
            lines.append(f"{start} | {r['rules']} | {r['error'][:90]} |" + " |" * 7)
            continue
        shape = f"{r['window']}, {r['normalize']}, {r['seasonal_skip']}"
        cells = [f"{r[f'{m}_mase']:.3f}" for m in ("model", "seasonal_naive", "naive")]
        cells += [f"{r[f'{m}_smape']:.2f}" for m in ("model", "seasonal_naive", "naive")]
        same = f" (= {r['same_as']})" if r.get("same_as") else ""
        lines.append(f"{start} ({r['usable']}) | {r['rules']}{same} | {shape} | "
                     f"{' | '.join(cells)} | {r['fit_s']:.0f} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=",".join(DATASETS), help="comma-separated data sets")
    parser.add_argument("--rules", help="only these rule sets (comma-separated)")
    parser.add_argument("--quick", action="store_true", help="12 M4 series, 2 epochs, 2 rules")
    parser.add_argument("--m4-series", type=int, default=80)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, help="also write the rows here (JSON)")
    parser.add_argument("--cache", type=Path, help="results by settings: reuse, extend")
    parser.add_argument("--table-only", action="store_true", help="only print what --cache has")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.force = {}
    if args.quick:
        args.m4_series, args.force = 12, {"max_epochs": 2, "patience": 2}
        args.rules = args.rules or "code,derived"
    cache = json.loads(args.cache.read_text()) if args.cache and args.cache.exists() else {}
    rows = [r for name in args.data.split(",") for r in measure(name, args, cache)]
    for phase in ("validation", "test"):
        print(f"\n{phase} ({'selection' if phase == 'validation' else 'held out'})\n")
        print(table(rows, phase))
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1, default=str))


if __name__ == "__main__":
    main()
