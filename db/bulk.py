"""Bulk writes below SQLAlchemy: COPY on PostgreSQL, executemany of tuples on SQLite.

PostgreSQL rows go in COPY's binary format (:func:`copy_binary`), built with numpy: the
server then parses no text (timestamps and floats are most of a text COPY's server time,
see bench/README.md) and the client formats none.

Both run on the driver connection inside the caller's SQLAlchemy transaction, so they commit
or roll back with it. Constraint violations are raised as SQLAlchemy's ``IntegrityError``,
like the statements SQLAlchemy runs itself.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

# SQLAlchemy's SQLite DATETIME storage format; text written here must match it byte for byte
# so that primary keys and views compare equal timestamps as equal strings.
SQLITE_TS_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


def distinct_codes(column: pd.Series) -> tuple[np.ndarray, pd.Series]:
    """``column``'s distinct values (a missing value last, as missing) and each row's code.

    ``column.take(codes)`` equals ``column`` up to the kind of missing value.
    """
    codes, uniques = pd.factorize(column)  # missing values get code -1
    distinct = pd.Series(uniques).reindex(range(len(uniques) + 1))  # ... which is this NA
    return np.where(codes < 0, len(uniques), codes), distinct


def utc_text(ts: pd.Series, fmt: str) -> pd.Series:
    """Aware timestamps as UTC text (None where missing), each distinct value formatted once."""
    codes, distinct = distinct_codes(ts)
    naive = distinct.dt.tz_convert("UTC").dt.tz_localize(None)
    text = naive.dt.strftime(fmt).astype(object).where(naive.notna(), None).to_numpy()
    return pd.Series(text.take(codes), index=ts.index, dtype=object)


def text_per_distinct(values: pd.Series) -> pd.Series:
    """``str(v)`` of every value, computed once per distinct value."""
    codes, distinct = pd.factorize(values, use_na_sentinel=False)
    text = np.array([str(v) for v in distinct], dtype=object)
    return pd.Series(text.take(codes), index=values.index, dtype=object)


@contextmanager
def _integrity_errors(conn: Connection, statement: str) -> Iterator[None]:
    """Raise the driver's constraint violations as SQLAlchemy's IntegrityError."""
    driver_error = conn.dialect.loaded_dbapi.IntegrityError
    try:
        yield
    except driver_error as exc:
        raise IntegrityError(statement, None, exc) from exc


# COPY binary: a fixed header, then per row an int16 field count and per field an int32 length
# (-1 for NULL) and the value in network byte order; an int16 -1 ends the data.
_BINARY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_BINARY_TRAILER = struct.pack(">h", -1)
_FIXED = {"timestamptz": ">i8", "float8": ">f8", "int8": ">i8", "int4": ">i4"}
_PG_EPOCH = np.datetime64("2000-01-01T00:00:00", "us")  # binary timestamps count from here


@dataclass(frozen=True)
class CopyColumn:
    """One column for :func:`copy_binary`.

    ``kind`` is the PostgreSQL type: ``text`` (a sequence of values turned into text with
    ``str``, missing is NULL), ``timestamptz`` (a sequence of aware timestamps, NaT is NULL),
    ``float8`` (NaN is NULL when ``nan_is_null``, else stored as NaN), ``int8`` or ``int4``.
    A number column's ``values`` may be one number for every row.
    """

    name: str
    kind: str
    values: Any
    nan_is_null: bool = False


def _prepared(col: CopyColumn, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the field's length in bytes (-1 for NULL) and its data (a numpy array)."""
    if col.kind == "text":
        values = col.values
        if not isinstance(values, pd.Series | pd.Index):
            values = np.asarray(values, dtype=object)
        codes, distinct = pd.factorize(values)  # missing values get code -1
        encoded = [str(v).encode() for v in distinct]
        table = np.array([*encoded, b""], dtype=f"S{max(map(len, encoded), default=0) or 1}")
        lengths = np.array([*map(len, encoded), -1], dtype=np.int32)  # code -1 picks NULL
        return lengths[codes], table[codes]
    if col.kind == "timestamptz":
        ts = pd.DatetimeIndex(col.values).tz_convert("UTC").tz_localize(None).as_unit("us")
        naive = ts.to_numpy()
        null = np.isnat(naive)
        data = (naive - _PG_EPOCH).astype(np.int64)
    elif col.kind in _FIXED:
        given = np.broadcast_to(np.asarray(col.values), (n,))
        data = given.astype(_FIXED[col.kind][1:])
        if col.kind == "int4" and n and not np.array_equal(data, given):
            raise ValueError(f"copy_binary: column {col.name!r} has values outside int4")
        null = np.isnan(data) if col.kind == "float8" and col.nan_is_null else np.zeros(n, bool)
    else:
        raise ValueError(f"copy_binary: unknown kind {col.kind!r} of column {col.name!r}")
    if len(data) != n:
        raise ValueError(f"copy_binary: column {col.name!r} has {len(data)} values, not {n}")
    width = np.dtype(_FIXED[col.kind]).itemsize
    return np.where(null, -1, width).astype(np.int32), data


def binary_copy_data(columns: Sequence[CopyColumn], n: int) -> bytes:
    """The rows as COPY binary data, rows of the same field lengths built as one numpy array.

    Rows come out grouped by their field lengths (COPY does not need the source order).
    """
    prepared = [_prepared(c, n) for c in columns]
    lengths = np.stack([p[0] for p in prepared], axis=1).astype(np.int64) + 1  # NULL is 0
    key = np.zeros(n, dtype=np.int64)  # one number per distinct combination of lengths
    for i in range(lengths.shape[1]):
        key = key * (int(lengths[:, i].max(initial=0)) + 1) + lengths[:, i]
    group, firsts = pd.factorize(key)
    parts = [_BINARY_HEADER]
    for g in range(len(firsts)):
        rows = np.flatnonzero(group == g)
        shape = lengths[rows[0]] - 1
        fields: list[tuple[str, str]] = [("count", ">i2")]
        for i, (col, size) in enumerate(zip(columns, shape, strict=True)):
            fields.append((f"len{i}", ">i4"))
            if size >= 0:
                fields.append((f"v{i}", f"S{size}" if col.kind == "text" else _FIXED[col.kind]))
        out = np.empty(len(rows), dtype=np.dtype(fields))
        out["count"] = len(columns)
        for i, (size, (_, data)) in enumerate(zip(shape, prepared, strict=True)):
            out[f"len{i}"] = size
            if size >= 0:
                out[f"v{i}"] = data[rows]
        parts.append(out.tobytes())
    parts.append(_BINARY_TRAILER)
    return b"".join(parts)


def copy_binary(conn: Connection, table: str, columns: Sequence[CopyColumn], n: int) -> None:
    """COPY ``n`` rows into ``table`` in binary format (see :class:`CopyColumn`)."""
    if n == 0:
        return
    data = binary_copy_data(columns, n)
    names = ", ".join(c.name for c in columns)
    statement = f"COPY {table} ({names}) FROM STDIN (FORMAT binary)"
    raw = conn.connection.driver_connection
    with (
        _integrity_errors(conn, statement),
        raw.cursor() as cur,  # type: ignore[union-attr]
        cur.copy(statement) as cp,
    ):
        cp.write(data)


def sqlite_insert(
    conn: Connection, table: str, columns: Iterable[str], rows: Iterable[tuple[Any, ...]]
) -> None:
    """``executemany`` plain tuples into ``table`` on the driver connection."""
    names = list(columns)
    statement = f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
    with _integrity_errors(conn, statement):
        conn.connection.driver_connection.executemany(statement, rows)  # type: ignore[union-attr]


def nullable(values: pd.Series) -> list[Any]:
    """The column as Python objects with None for missing values (NULL on SQLite)."""
    return values.astype(object).where(values.notna(), None).tolist()
