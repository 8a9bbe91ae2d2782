"""Readers that turn CSV and Parquet files into chunks for db.ingest.

A chunk is a frame of text columns ``series_id, ts, value`` plus ``row_number`` (the line in
a CSV file, counting the header as line 1, or the record number in Parquet) and
``read_error`` (why the reader could not split the line, else empty). Files are streamed:
memory is bounded by the chunk size, not the file size. Every line that is not blank
becomes exactly one row, so every row can be accepted or rejected with its line number.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

import pandas as pd

from db.observations import SeriesSpec
from flows.errors import SeqcastError

REQUIRED = ("series_id", "ts", "value")
CHUNK_ROWS = 100_000
DELIMITERS = (",", ";", "\t", "|")


@dataclass(frozen=True)
class SourceBatch:
    """One source to load: where it is, a hash of its content, and how to read it."""

    source: str
    content_sha256: str
    declare: SeriesSpec | None
    read: Callable[[int], Iterator[pd.DataFrame]]

    def chunks(self, chunk_rows: int = CHUNK_ROWS) -> Iterator[pd.DataFrame]:
        return self.read(chunk_rows)

    def read_all(self) -> pd.DataFrame:
        """Every row at once (small sources and tests)."""
        return pd.concat(list(self.chunks()), ignore_index=True)


def _open(path: Path) -> IO[bytes]:
    if path.name.lower().endswith(".gz"):
        return cast(IO[bytes], gzip.open(path, "rb"))
    return path.open("rb")


def file_sha256(path: Path) -> str:
    """SHA-256 of the file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _frame(cols: dict[str, list[object]], columns: tuple[str, ...] = REQUIRED) -> pd.DataFrame:
    frame = pd.DataFrame(cols, columns=[*columns, "row_number", "read_error"])
    frame["row_number"] = frame["row_number"].astype("int64")
    return frame


def _hint(columns: tuple[str, ...]) -> str:
    """What to do about a series file in another layout (flows.sources.layout)."""
    if columns != REQUIRED:
        return ""
    return (
        "; for other names give --columns series_id=HEADER,ts=HEADER,value=HEADER, for a time "
        "column and one column per series --wide, for one series per file --series-id NAME "
        "(a files source in the project file: layout: {columns: ..., wide: true, series_id: "
        "...})"
    )


def _csv_header(
    path: Path, fh: IO[bytes], columns: tuple[str, ...] = REQUIRED
) -> tuple[str, list[int], int]:
    """(delimiter, indices of ``columns``, number of fields) from the header line."""
    first = fh.readline()
    if not first.strip():
        raise SeqcastError(f"{path}: the file is empty; expected a header {','.join(columns)}")
    try:
        header = first.decode("utf-8-sig").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise SeqcastError(f"{path}:1: the header is not valid UTF-8; re-save as UTF-8") from exc
    delimiter = max(DELIMITERS, key=header.count)
    names = [
        n.strip().lstrip("\ufeff").lower() for n in next(csv.reader([header], delimiter=delimiter))
    ]
    missing = [c for c in columns if c not in names]
    if missing:
        raise SeqcastError(
            f"{path}:1: missing column(s) {', '.join(missing)}; found {names}. "
            f"seqcast expects a long table with columns {', '.join(columns)}{_hint(columns)}"
        )
    return delimiter, [names.index(c) for c in columns], len(names)


def iter_csv_chunks(
    path: Path, chunk_rows: int = CHUNK_ROWS, columns: tuple[str, ...] = REQUIRED
) -> Iterator[pd.DataFrame]:
    """Stream a CSV file as chunks; lines that cannot be split become rows with a read_error.

    ``columns``: the columns to read (their names in the header); the last one gets the start
    of a line that cannot be split, for its reject."""
    with _open(path) as fh:
        delimiter, where, n_fields = _csv_header(path, fh, columns)
        cols: dict[str, list[object]] = {k: [] for k in (*columns, "row_number", "read_error")}
        for line_no, raw in enumerate(fh, start=2):
            if not raw.strip():
                continue
            error = ""
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                error = f"invalid UTF-8 at byte {exc.start} of the line; re-save the file as UTF-8"
            # Fast path for the common unquoted line; csv handles quoting.
            fields = (
                line.split(delimiter)
                if '"' not in line
                else next(csv.reader([line], delimiter=delimiter))
            )
            if not error and len(fields) != n_fields:
                error = f"expected {n_fields} fields, found {len(fields)}"
                if not raw.endswith(b"\n"):
                    error += " (the last line looks truncated)"
            ok = len(fields) == n_fields
            for k, (name, i) in enumerate(zip(columns, where, strict=True)):
                last = k == len(columns) - 1
                cols[name].append(fields[i] if ok else line[:80] if last else "")
            cols["row_number"].append(line_no)
            cols["read_error"].append(error)
            if len(cols["row_number"]) >= chunk_rows:
                yield _frame(cols, columns)
                cols = {k: [] for k in cols}
        if cols["row_number"]:
            yield _frame(cols, columns)


def iter_parquet_chunks(
    path: Path, chunk_rows: int = CHUNK_ROWS, columns: tuple[str, ...] = REQUIRED
) -> Iterator[pd.DataFrame]:
    """Stream a Parquet file by record batches; row numbers count records from 1."""
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:
        raise SeqcastError(f"{path}: not a readable Parquet file ({exc})") from exc
    names = {n.lower(): n for n in pf.schema_arrow.names}
    missing = [c for c in columns if c not in names]
    if missing:
        raise SeqcastError(
            f"{path}: missing column(s) {', '.join(missing)}; found {list(names)}{_hint(columns)}"
        )
    start = 1
    for batch in pf.iter_batches(batch_size=chunk_rows, columns=[names[c] for c in columns]):
        frame = batch.to_pandas()
        frame.columns = list(columns)
        for name in frame.columns:  # the time column, whatever a layout calls it
            if pd.api.types.is_datetime64_any_dtype(frame[name]):
                # Keep the zone (or its absence) visible to validation, exactly as stored.
                frame[name] = frame[name].map(lambda t: "" if pd.isna(t) else t.isoformat())
        frame = frame.astype(object).where(frame.notna(), "").astype(str)
        frame["row_number"] = range(start, start + len(frame))
        frame["read_error"] = ""
        start += len(frame)
        yield frame


def file_header(path: str | Path) -> list[str]:
    """The column names of a CSV or Parquet file as written (stripped, case kept).

    Raises:
        SeqcastError: no such file, an unknown type, an empty or unreadable header.
    """
    path = check_file(path, ())
    if path.name.lower().endswith(".parquet"):
        import pyarrow.parquet as pq

        return [str(n).strip() for n in pq.ParquetFile(path).schema_arrow.names]
    with _open(path) as fh:
        header = fh.readline().decode("utf-8-sig", errors="replace").rstrip("\r\n")
    delimiter = max(DELIMITERS, key=header.count)
    return [n.strip() for n in next(csv.reader([header], delimiter=delimiter))]


def check_file(path: str | Path, columns: tuple[str, ...] = REQUIRED) -> Path:
    """Check that ``path`` is a file seqcast can load: it exists, its type, its header.

    Reads the header only (one record of a Parquet file), so callers can check every file
    before any work starts; raises SeqcastError saying what is wrong.
    """
    path = Path(path)
    if path.is_dir():
        raise SeqcastError(f"{path}: is a directory; give the files in it")
    if not path.is_file():
        raise SeqcastError(f"{path}: no such file")
    name = path.name.lower()
    if not name.endswith((".parquet", ".csv", ".csv.gz", ".txt")):
        raise SeqcastError(f"{path}: unknown file type; use .csv, .csv.gz or .parquet")
    try:
        if path.stat().st_size == 0:
            raise SeqcastError(f"{path}: the file is empty; expected a header {','.join(columns)}")
        if name.endswith(".parquet"):
            next(iter_parquet_chunks(path, 1, columns), None)  # schema check
        else:
            with _open(path) as fh:
                _csv_header(path, fh, columns)
    except OSError as exc:  # permissions, a corrupt .gz
        raise SeqcastError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    return path


def read_file(path: str | Path, declare: SeriesSpec | None = None) -> SourceBatch:
    """Describe a long-format CSV (``.csv``, ``.csv.gz``, ``.txt``) or Parquet file.

    The file is checked now (:func:`check_file`), so one that cannot be loaded at all fails
    before any work.
    """
    path = check_file(path)
    reader: Callable[[Path, int], Iterator[pd.DataFrame]] = (
        iter_parquet_chunks if path.name.lower().endswith(".parquet") else iter_csv_chunks
    )
    return SourceBatch(
        source=str(path.resolve()),
        content_sha256=file_sha256(path),
        declare=declare,
        read=lambda n: reader(path, n),
    )
