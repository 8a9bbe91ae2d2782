"""Bulk writes below SQLAlchemy: COPY on PostgreSQL, executemany of tuples on SQLite.

Both run on the driver connection inside the caller's SQLAlchemy transaction, so they commit
or roll back with it. Constraint violations are raised as SQLAlchemy's ``IntegrityError``,
like the statements SQLAlchemy runs itself.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

# SQLAlchemy's SQLite DATETIME storage format; text written here must match it byte for byte
# so that primary keys and views compare equal timestamps as equal strings.
SQLITE_TS_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
POSTGRES_TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%f+00:00"


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


def copy_csv(conn: Connection, table: str, frame: pd.DataFrame) -> None:
    """COPY ``frame`` (columns named as in ``table``) into ``table``: NaN and None are NULL."""
    buf = io.StringIO()
    frame.to_csv(buf, index=False, header=False)
    statement = f"COPY {table} ({', '.join(frame.columns)}) FROM STDIN (FORMAT csv)"
    raw = conn.connection.driver_connection
    with (
        _integrity_errors(conn, statement),
        raw.cursor() as cur,  # type: ignore[union-attr]
        cur.copy(statement) as cp,
    ):
        cp.write(buf.getvalue())


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
