"""What every incremental source yields, and helpers they share.

A source is a generator of :class:`SourceLoad` (one ingest batch each) and
:class:`SourceFailure` (a part of the source that could not be read: one symbol, one file).
The runner commits each load before it resumes the generator, so code after ``yield load``
runs only once the load's rows and watermark are committed (MQTT acknowledges there).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from db.watermarks import WatermarkUpdate

ROW_COLUMNS = ["series_id", "ts", "value", "row_number", "read_error"]


@dataclass(frozen=True)
class Window:
    """A backfill range ``[start, end)`` in UTC."""

    start: dt.datetime
    end: dt.datetime


@dataclass(frozen=True)
class SourceLoad:
    """One batch for db.ingest: a label, its content hash, its chunks and the watermark move."""

    source: str
    content_sha256: str
    chunks: Iterable[pd.DataFrame]
    watermark: WatermarkUpdate | None


@dataclass(frozen=True)
class SourceFailure:
    """A part of a source that could not be read, and why (the rest still loads)."""

    source: str
    message: str


SourceItems = Generator[SourceLoad | SourceFailure, None, None]


def rows_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows (series_id, ts, value, read_error as text) numbered 1..n in arrival order."""
    frame = pd.DataFrame(rows, columns=["series_id", "ts", "value", "read_error"])
    frame = frame.astype(object).where(frame.notna(), "").astype(str)
    frame["row_number"] = range(1, len(frame) + 1)
    return frame[ROW_COLUMNS]


def frame_sha256(frame: pd.DataFrame) -> str:
    """A content hash of the rows, so an identical batch is recognised as already loaded."""
    h = hashlib.sha256()
    for col in ("series_id", "ts", "value", "read_error"):
        h.update("\x1f".join(frame[col].tolist()).encode("utf-8", "surrogatepass"))
        h.update(b"\x1e")
    return h.hexdigest()


def format_ts(value: object, unit: str) -> str:
    """A timestamp as text for validation: ISO kept as is, epoch seconds/ms made ISO UTC."""
    if value is None:
        return ""
    if unit == "iso" or isinstance(value, bool):
        return value.isoformat() if isinstance(value, dt.datetime) else str(value)
    try:
        seconds = float(value) / (1000.0 if unit == "ms" else 1.0)  # type: ignore[arg-type]
        return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat()
    except (TypeError, ValueError, OverflowError, OSError):
        return str(value)  # validation rejects it with the text it got


_MISSING = object()


def get_path(obj: Any, path: str) -> Any:
    """``a.b.0.c`` into nested dicts/lists; raises KeyError naming the missing part."""
    if not path:
        return obj
    for part in path.split("."):
        if isinstance(obj, dict):
            nxt = obj.get(part, _MISSING)
        elif (
            isinstance(obj, list)
            and part.lstrip("-").isdigit()
            and -len(obj) <= int(part) < len(obj)
        ):
            nxt = obj[int(part)]
        else:
            nxt = _MISSING
        if nxt is _MISSING:
            raise KeyError(f"no field {part!r} (path {path!r})")
        obj = nxt
    return obj


def iso_z(ts: dt.datetime) -> str:
    """``2024-01-05T00:00:00Z`` (UTC, second precision): what most APIs accept."""
    return ts.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
