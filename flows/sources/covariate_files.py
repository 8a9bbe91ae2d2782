"""Covariate and static attribute files (CSV, CSV.gz or Parquet) read for db.covariates.

A covariate file is a long table: ``ts, value``, the scope's key column (``series_id`` for
series-scoped values, ``group`` for a group's, none for global ones) and ``name`` unless the
command names the covariate. An attribute file has ``series_id, value`` and ``name`` unless
named. Every non-blank line becomes one row with its line number, as for observations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from db.covariates import AttributeDeclaration, CovariateDeclaration
from flows.sources.readers import (
    CHUNK_ROWS,
    check_file,
    file_sha256,
    iter_csv_chunks,
    iter_parquet_chunks,
)

KEY_COLUMN = {"series": "series_id", "group": "group", "global": None}


@dataclass(frozen=True)
class TableFile:
    """One file's rows (text columns, ``row_number``, ``read_error``), path and content hash."""

    source: str
    content_sha256: str
    rows: pd.DataFrame


def covariate_columns(declaration: CovariateDeclaration) -> tuple[str, ...]:
    """The columns a covariate file of this declaration needs, ``value`` last."""
    key = KEY_COLUMN[declaration.scope]
    return (*(() if declaration.name else ("name",)), *((key,) if key else ()), "ts", "value")


def attribute_columns(declaration: AttributeDeclaration) -> tuple[str, ...]:
    """The columns an attribute file of this declaration needs, ``value`` last."""
    return ("series_id", *(() if declaration.name else ("name",)), "value")


def _read(path: str | Path, columns: tuple[str, ...]) -> TableFile:
    checked = check_file(path, columns)
    reader: Callable[[Path, int, tuple[str, ...]], Iterator[pd.DataFrame]] = (
        iter_parquet_chunks if checked.name.lower().endswith(".parquet") else iter_csv_chunks
    )
    chunks = list(reader(checked, CHUNK_ROWS, columns))
    rows = (
        pd.concat(chunks, ignore_index=True)
        if chunks
        else pd.DataFrame(columns=[*columns, "row_number", "read_error"])
    )
    return TableFile(str(checked.resolve()), file_sha256(checked), rows)


def read_covariate_file(path: str | Path, declaration: CovariateDeclaration) -> TableFile:
    """Read a covariate file whole (they are small) with its key column as ``scope_key``.

    Raises:
        SeqcastError: no such file, an unknown type, or a missing column (named).
    """
    table = _read(path, covariate_columns(declaration))
    key = KEY_COLUMN[declaration.scope]
    rows = table.rows.rename(columns={key: "scope_key"}) if key else table.rows
    return TableFile(table.source, table.content_sha256, rows)


def read_attribute_file(path: str | Path, declaration: AttributeDeclaration) -> TableFile:
    """Read a static attribute file whole (see :func:`read_covariate_file`)."""
    return _read(path, attribute_columns(declaration))
