"""Real series of frequencies the demo does not use, as long-format CSV files a user would have.

All read from the installed bokeh_sampledata package (no download): sea-surface temperature
every 30 minutes (Feb-Mar 2016), daily maximum and minimum temperatures at Lincoln, Nebraska
(2016), and the monthly US unemployment rate (1948-2015).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pandas as pd


def _data(name: str) -> Path:
    return Path(str(resources.files("bokeh_sampledata") / "_data" / name))


def sea_temperature_30min(last: int | None = None) -> pd.DataFrame:
    """One series, ``sst-buoy``, every 30 minutes (about 19,000 points; the ``last`` ones)."""
    raw = pd.read_csv(_data("sea_surface_temperature.csv.gz"))
    raw = raw if last is None else raw.tail(last)
    return pd.DataFrame(
        {"series_id": "sst-buoy", "ts": raw["time (UTC)"], "value": raw["temperature (celsius)"]}
    )


def lincoln_daily() -> pd.DataFrame:
    """Two series, ``lincoln-tmax`` and ``lincoln-tmin`` (degrees F), one point a day (366)."""
    raw = pd.read_csv(_data("lincoln_weather.csv"))
    ts = pd.to_datetime(raw["DATE"]).dt.strftime("%Y-%m-%dT00:00:00+00:00")
    parts = [
        pd.DataFrame({"series_id": f"lincoln-{col.lower()}", "ts": ts, "value": raw[col]})
        for col in ("TMAX", "TMIN")
    ]
    return pd.concat(parts, ignore_index=True)


def unemployment_monthly() -> pd.DataFrame:
    """One series, ``us-unemployment`` (percent), first of each month 1948-2015 (816 points)."""
    raw = pd.read_csv(_data("unemployment1948.csv"))
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    long = raw.melt(id_vars="Year", value_vars=months, var_name="month", value_name="value")
    long["ts"] = pd.to_datetime(
        long["Year"].astype(str) + "-" + long["month"], format="%Y-%b"
    ).dt.strftime("%Y-%m-%dT00:00:00+00:00")
    long = long.dropna(subset=["value"]).sort_values("ts")
    return pd.DataFrame({"series_id": "us-unemployment", "ts": long["ts"], "value": long["value"]})


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    """The frame as a long CSV with the header ``series_id,ts,value``."""
    frame.to_csv(path, index=False)
    return path


def m4_hourly(path: Path, ids: tuple[str, ...] = ("H1", "H2", "H3")) -> pd.DataFrame:
    """M4 Hourly training series (wide CSV) in long format. M4 gives no dates: each series
    ends at 2016-06-30 23:00 UTC, hour by hour back from there."""
    wide = pd.read_csv(path, index_col=0)
    parts = []
    for sid in ids:
        values = wide.loc[sid].dropna().to_numpy(dtype=float)
        ts = pd.date_range(end="2016-06-30 23:00", periods=len(values), freq="h", tz="UTC")
        parts.append(
            pd.DataFrame(
                {"series_id": f"m4-{sid}", "ts": ts.strftime("%Y-%m-%dT%H:%M:%S+00:00"),
                 "value": values}
            )
        )  # fmt: skip
    return pd.concat(parts, ignore_index=True)
