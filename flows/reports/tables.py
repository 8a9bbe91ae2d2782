"""Rows as rich tables for the terminal: one way to show them in every command and the demo."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from rich.table import Table


def cell_text(value: Any) -> str:
    """A cell as text: floats to 6 significant digits, times to the minute, NaN/NaT blank."""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    if isinstance(value, pd.Timestamp):
        return "" if pd.isna(value) else value.strftime("%Y-%m-%d %H:%M")
    return "" if value is None else str(value)


def rich_table(
    title: str,
    rows: pd.DataFrame | Sequence[Mapping[str, Any]],
    columns: Sequence[str] | None = None,
    empty: str | None = None,
) -> Table | str:
    """A table of ``rows`` (records or a frame) with ``columns`` (default: all, in order).

    With ``empty`` given, no rows give the line ``title: empty`` instead of an empty table.
    """
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    if columns is not None:
        frame = frame.reindex(columns=list(columns))
    if frame.empty and empty is not None:
        return f"[bold]{title}[/bold]: {empty}"
    table = Table(title=title or None, title_justify="left")
    for col in frame.columns:
        table.add_column(str(col))
    for row in frame.itertuples(index=False):
        table.add_row(*[cell_text(v) for v in row])
    return table


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """``rows`` as a Markdown table with ``columns`` (a missing cell is blank)."""
    lines = [f"| {' | '.join(columns)} |", f"|{'---|' * len(columns)}"]
    lines += [f"| {' | '.join(cell_text(r.get(c)) for c in columns)} |" for r in rows]
    return "\n".join(lines)
