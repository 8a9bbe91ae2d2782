"""Insert-or-update (``INSERT ... ON CONFLICT``) on SQLite and PostgreSQL.

SQLAlchemy spells ``ON CONFLICT`` per dialect (``sqlalchemy.dialects.postgresql.insert`` and
``sqlalchemy.dialects.sqlite.insert``); both databases accept the same clause, so every
upsert in ``db/`` goes through :func:`upsert` and none picks a dialect itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite

from db.engine import is_postgres

# Rows per statement: bounds the size of one statement and of its parameter list.
CHUNK_ROWS = 500


def upsert(
    conn: Connection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    keys: Sequence[str],
    *,
    update: bool = True,
) -> None:
    """Insert ``rows`` into ``table`` inside the caller's transaction.

    Args:
        conn: the connection (and transaction) to write on.
        table: the table to write.
        rows: one dict per row, all with the same columns.
        keys: the columns of the primary key or unique constraint that identifies a row.
        update: a row whose keys are stored already overwrites the stored row's other
            columns when True, and is left out (the stored row kept as it is) when False.
    """
    if not rows:
        return
    insert: postgresql.Insert | sqlite.Insert = (
        postgresql.insert(table) if is_postgres(conn) else sqlite.insert(table)
    )
    others = [c for c in rows[0] if c not in keys]
    if update and others:
        stmt = insert.on_conflict_do_update(
            index_elements=list(keys), set_={c: insert.excluded[c] for c in others}
        )
    else:
        stmt = insert.on_conflict_do_nothing(index_elements=list(keys))
    for start in range(0, len(rows), CHUNK_ROWS):
        conn.execute(stmt, list(rows[start : start + CHUNK_ROWS]))
