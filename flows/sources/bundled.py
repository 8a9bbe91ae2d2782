"""The bundled real data sets: a glucose sensor and daily stock prices (bokeh_sampledata)."""

from __future__ import annotations

import hashlib
import io
from importlib import resources

import pandas as pd

from db.observations import SeriesSpec
from flows.errors import SeqcastError
from flows.sources.readers import SourceBatch

# The installed package whose data files the bundled data sets are.
DATA_PACKAGE = "bokeh_sampledata"


def _bokeh_file(name: str) -> bytes:
    try:
        return (resources.files(DATA_PACKAGE) / "_data" / name).read_bytes()
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise SeqcastError(
            f"bundled data set file {name} not found: install bokeh_sampledata "
            "(it comes with pip install seqcast)"
        ) from exc


def _in_memory(source: str, data: bytes, rows: pd.DataFrame, spec: SeriesSpec) -> SourceBatch:
    rows = rows.assign(read_error="")
    return SourceBatch(
        source=source,
        content_sha256=hashlib.sha256(data).hexdigest(),
        declare=spec,
        read=lambda n: (rows.iloc[i : i + n] for i in range(0, len(rows), n)),
    )


def bundled_glucose() -> SourceBatch:
    """Continuous glucose monitor readings every ~5 minutes (bokeh_sampledata CGM.csv.gz).

    The file's timestamps carry no zone; they are taken as UTC.
    """
    data = _bokeh_file("CGM.csv.gz")
    frame = pd.read_csv(io.BytesIO(data), compression="gzip", dtype=str, keep_default_na=False)
    rows = pd.DataFrame(
        {
            "series_id": "cgm-glucose",
            "ts": frame["datetime"].str.strip() + "+00:00",
            "value": frame["glucose"],
            "row_number": range(2, len(frame) + 2),
        }
    )
    spec = SeriesSpec("sensor", "5min", "mg/dL", "bokeh_sampledata CGM")
    return _in_memory("bundled:glucose", data, rows, spec)


def bundled_stocks() -> SourceBatch:
    """Daily adjusted closing prices of five tickers (bokeh_sampledata stocks.csv.gz)."""
    data = _bokeh_file("stocks.csv.gz")
    frame = pd.read_csv(io.BytesIO(data), compression="gzip", dtype=str, keep_default_na=False)
    rows = pd.DataFrame(
        {
            "series_id": "stock-" + frame["Ticker"].str.strip(),
            "ts": frame["Date"].str.strip() + "T00:00:00+00:00",
            "value": frame["Adj Close"],
            "row_number": range(2, len(frame) + 2),
        }
    )
    spec = SeriesSpec("price", "B", "USD", "bokeh_sampledata stocks")
    return _in_memory("bundled:stocks", data, rows, spec)


BUNDLED = {"glucose": bundled_glucose, "stocks": bundled_stocks}


def bundled(name: str) -> SourceBatch:
    """A bundled real data set by name (``glucose`` or ``stocks``)."""
    if name not in BUNDLED:
        raise SeqcastError(f"unknown bundled data set {name!r}; choose one of {sorted(BUNDLED)}")
    return BUNDLED[name]()
