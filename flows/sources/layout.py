"""Files as users have them: other column names, one column per series, one series per file,
decimal commas. A :class:`FileLayout` says how a file differs from seqcast's long table
(``series_id, ts, value``); :func:`read_laid_out` reads it into the same chunks as
:func:`flows.sources.readers.read_file`, so validation, rejects and counts are unchanged.

* ``columns``: the file's names for seqcast's columns, e.g. ``{ts: date, value: temp,
  series_id: sensor}`` (header names are compared case-insensitively).
* ``wide``: a ``ts`` column and one column per series, named after its header. Each series
  column is one batch of its own (source ``FILE#COLUMN``), so every row keeps its line number
  and a repeat of the same file is a no-op per column; a blank cell is no reading and not a
  row. Every column but ``ts`` is read, so leave other columns out of the file.
* ``series_id``: the file is one series (columns ``ts, value``) with this id.
* ``decimal: ","``: values are written with a decimal comma (``1,5``), as in files whose
  fields are separated by semicolons.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from db.observations import SeriesSpec
from flows.errors import SeqcastError
from flows.sources.readers import (
    REQUIRED,
    SourceBatch,
    file_header,
    file_sha256,
    iter_csv_chunks,
    iter_parquet_chunks,
)

Column = Literal["series_id", "ts", "value"]


class FileLayout(BaseModel):
    """How a file differs from the long table ``series_id, ts, value`` (module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    columns: dict[Column, str] = Field(
        default_factory=dict, description="the file's names for series_id, ts, value"
    )
    wide: bool = Field(False, description="a ts column and one column per series")
    series_id: str | None = Field(
        None, min_length=1, max_length=200, description="the one series of a ts, value file"
    )
    decimal: Literal[".", ","] = Field(".", description="the decimal mark of the values")

    @model_validator(mode="after")
    def _consistent(self) -> FileLayout:
        if self.wide and self.series_id is not None:
            raise ValueError("give wide or series_id, not both: a wide file names its series")
        taken = {"series_id", "value"} & set(self.columns) if self.wide else set()
        if self.series_id is not None and "series_id" in self.columns:
            taken = {"series_id"}
        if taken:
            raise ValueError(
                f"columns maps {sorted(taken)}, which this layout has no column for "
                "(wide: the headers are the series; series_id: the id is given)"
            )
        return self

    @property
    def is_long(self) -> bool:
        """Whether this is seqcast's own layout (a file read exactly as before)."""
        return self == FileLayout()

    def name(self, column: Column) -> str:
        """The file's header name of seqcast's ``column``."""
        return self.columns.get(column, column).strip().lower()

    @classmethod
    def parse_columns(cls, text: str | None) -> dict[str, str]:
        """``ts=date,value=temp`` (the CLI's ``--columns``) as a mapping; raises
        SeqcastError naming what is wrong."""
        mapping: dict[str, str] = {}
        for part in (text or "").split(","):
            if not part.strip():
                continue
            ours, sep, theirs = part.partition("=")
            if not sep or ours.strip() not in REQUIRED or not theirs.strip():
                raise SeqcastError(
                    f"--columns {text!r}: write NAME=HEADER pairs for series_id, ts, value, "
                    "e.g. --columns ts=date,series_id=sensor,value=temp"
                )
            mapping[ours.strip()] = theirs.strip()
        return mapping


def _reader(path: Path) -> Callable[[Path, int, tuple[str, ...]], Iterator[pd.DataFrame]]:
    return iter_parquet_chunks if path.name.lower().endswith(".parquet") else iter_csv_chunks


def _batch(
    path: Path, layout: FileLayout, declare: SeriesSpec | None, column: str | None = None
) -> SourceBatch:
    """One batch: the file (``column``: one series column of a wide file) as long chunks."""
    ts = layout.name("ts")
    if column is not None:
        wanted: tuple[str, ...] = (ts, column.lower())
    elif layout.series_id is not None:
        wanted = (ts, layout.name("value"))
    else:
        wanted = (layout.name("series_id"), ts, layout.name("value"))
    read = _reader(path)
    sid = column if column is not None else layout.series_id

    target = ("ts", "value") if sid is not None else REQUIRED

    def chunks(n: int) -> Iterator[pd.DataFrame]:
        for frame in read(path, n, wanted):
            frame.columns = [*target, "row_number", "read_error"]
            if sid is not None:
                frame.insert(0, "series_id", sid)
            if column is not None:  # a blank cell is no reading
                frame = frame[(frame["value"].str.strip() != "") | (frame["read_error"] != "")]
            if layout.decimal == ",":
                frame["value"] = frame["value"].str.replace(",", ".", regex=False)
            yield frame.reset_index(drop=True)

    # The layout is part of what was loaded: the same file read another way is another batch.
    key = layout.model_dump_json() + (f"#{column}" if column else "")
    sha = hashlib.sha256((file_sha256(path) + key).encode()).hexdigest()
    source = str(path.resolve()) + (f"#{column}" if column else "")
    return SourceBatch(source=source, content_sha256=sha, declare=declare, read=chunks)


def read_laid_out(
    path: str | Path, declare: SeriesSpec | None, layout: FileLayout
) -> list[SourceBatch]:
    """The batches of a file in ``layout``: one, or one per series column of a wide file.

    Raises:
        SeqcastError: the file cannot be read, or lacks a column the layout names (named,
            with the columns it has).
    """
    path = Path(path)
    if layout.wide:
        names = file_header(path)
        ts = layout.name("ts")
        if ts not in [n.lower() for n in names]:
            raise SeqcastError(
                f"{path}:1: no time column {ts!r} for a wide file; found {names}; "
                "name it with --columns ts=HEADER"
            )
        series = [n for n in names if n.lower() != ts]
        if not series:
            raise SeqcastError(f"{path}:1: a wide file needs one column per series; found {names}")
        return [_batch(path, layout, declare, column) for column in series]
    wanted: tuple[Column, ...] = (
        ("ts", "value") if layout.series_id is not None else ("series_id", "ts", "value")
    )
    names = [n.lower() for n in file_header(path)]
    missing = [f"{c} ({layout.name(c)!r})" for c in wanted if layout.name(c) not in names]
    if missing:
        raise SeqcastError(
            f"{path}:1: no column for {', '.join(missing)}; found {names}; name the file's "
            "columns with --columns series_id=HEADER,ts=HEADER,value=HEADER (a files source: "
            "layout: {columns: {...}})"
        )
    return [_batch(path, layout, declare)]
