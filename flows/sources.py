"""Readers that turn files and bundled data sets into raw batches for db.ingest_observations.

A raw batch is a frame of text columns ``series_id, ts, value`` plus ``row_number`` (the line
in a CSV file counting the header as line 1, or the record number in Parquet), so every
rejected row can be traced to its place in the source.
"""

from __future__ import annotations

import gzip
import hashlib
import io
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pandas as pd

from db.observations import SeriesSpec
from flows.errors import SeqcastError

REQUIRED = ("series_id", "ts", "value")


@dataclass(frozen=True)
class RawBatch:
    """One batch as read: text rows, where they came from, and a hash of the content."""

    source: str
    rows: pd.DataFrame
    content_sha256: str
    declare: SeriesSpec | None = None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check_columns(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    cols = {str(c).strip().lstrip("\ufeff").lower(): c for c in frame.columns}
    missing = [c for c in REQUIRED if c not in cols]
    if missing:
        raise SeqcastError(
            f"{source}: missing column(s) {', '.join(missing)}; found {list(frame.columns)}. "
            "seqcast expects a long table with columns series_id, ts, value"
        )
    return frame.rename(columns={cols[c]: c for c in REQUIRED})[list(REQUIRED)]


def read_file(path: str | Path, declare: SeriesSpec | None = None) -> RawBatch:
    """Read a long-format CSV (``.csv``, ``.csv.gz``) or Parquet file without losing any row."""
    path = Path(path)
    if not path.is_file():
        raise SeqcastError(f"{path}: no such file")
    data = path.read_bytes()
    source = str(path.resolve())
    name = path.name.lower()
    if name.endswith(".parquet"):
        try:
            frame = pd.read_parquet(io.BytesIO(data))
        except Exception as exc:
            raise SeqcastError(f"{path}: not a readable Parquet file ({exc})") from exc
        frame = _check_columns(frame, str(path))
        if pd.api.types.is_datetime64_any_dtype(frame["ts"]):
            # Keep the zone (or its absence) visible to validation, exactly as stored.
            frame["ts"] = frame["ts"].map(lambda t: "" if pd.isna(t) else t.isoformat())
        frame = frame.astype(object).where(frame.notna(), "").astype(str)
        frame["row_number"] = range(1, len(frame) + 1)
    elif name.endswith((".csv", ".csv.gz", ".txt")):
        text_bytes = gzip.decompress(data) if name.endswith(".gz") else data
        try:
            text = text_bytes.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = text_bytes[: exc.start].count(b"\n") + 1
            raise SeqcastError(
                f"{path}:{line}: invalid UTF-8 at byte {exc.start}; re-save the file as UTF-8"
            ) from exc
        if not text.strip():
            raise SeqcastError(f"{path}: the file is empty; expected a header series_id,ts,value")
        try:
            frame = pd.read_csv(
                io.StringIO(text), dtype=str, keep_default_na=False, skip_blank_lines=False
            )
        except pd.errors.ParserError as exc:
            raise SeqcastError(f"{path}: not a readable CSV file ({exc})") from exc
        frame = _check_columns(frame, str(path))
        # Line numbers in the file: header is line 1, first data row line 2.
        frame["row_number"] = range(2, len(frame) + 2)
        blank = (frame[list(REQUIRED)] == "").all(axis=1)
        frame = frame[~blank]
    else:
        raise SeqcastError(f"{path}: unknown file type; use .csv, .csv.gz or .parquet")
    return RawBatch(
        source=source,
        rows=frame.reset_index(drop=True),
        content_sha256=_sha256(data),
        declare=declare,
    )


def _bokeh_file(name: str) -> bytes:
    try:
        return (resources.files("bokeh_sampledata") / "_data" / name).read_bytes()
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise SeqcastError(
            f"bundled data set file {name} not found: install bokeh_sampledata "
            "(it comes with pip install seqcast)"
        ) from exc


def bundled_glucose() -> RawBatch:
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
    return RawBatch(
        "bundled:glucose",
        rows,
        _sha256(data),
        SeriesSpec("sensor", "5min", "mg/dL", "bokeh_sampledata CGM"),
    )


def bundled_stocks() -> RawBatch:
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
    return RawBatch(
        "bundled:stocks",
        rows,
        _sha256(data),
        SeriesSpec("price", "B", "USD", "bokeh_sampledata stocks"),
    )


BUNDLED = {"glucose": bundled_glucose, "stocks": bundled_stocks}


def bundled(name: str) -> RawBatch:
    """A bundled real data set by name (``glucose`` or ``stocks``)."""
    if name not in BUNDLED:
        raise SeqcastError(f"unknown bundled data set {name!r}; choose one of {sorted(BUNDLED)}")
    return BUNDLED[name]()
