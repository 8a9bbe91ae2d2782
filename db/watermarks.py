"""Per-source watermarks: how far each incremental source has been loaded.

A watermark is a JSON object, e.g. ``{"AAPL": "2024-01-05T00:00:00+00:00"}`` for a price API
(one key per symbol) or ``{"value": ..., "type": "int"}`` for a SQL table. It is advanced by
:func:`db.ingest.load_chunk` in the same transaction as the rows it covers, so a crash leaves
rows and watermark unchanged together and a re-run loads exactly the missing rows.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, delete, select

from db.engine import is_postgres
from db.schema import source_watermarks
from db.upsert import upsert


@dataclass(frozen=True)
class WatermarkUpdate:
    """Keys to merge into a source's stored watermark object."""

    source: str
    values: dict[str, Any] = field(default_factory=dict)


def _decode(text: str | None) -> dict[str, Any]:
    return dict(json.loads(text)) if text else {}


def read_watermark(engine: Engine | Connection, source: str) -> dict[str, Any]:
    """The stored watermark object of ``source`` (empty when it was never loaded)."""
    stmt = select(source_watermarks.c.watermark).where(source_watermarks.c.source == source)
    if isinstance(engine, Connection):
        return _decode(engine.execute(stmt).scalar_one_or_none())
    with engine.connect() as conn:
        return _decode(conn.execute(stmt).scalar_one_or_none())


def advance_watermark(conn: Connection, update: WatermarkUpdate) -> dict[str, Any]:
    """Merge ``update.values`` into the stored object inside the caller's transaction."""
    lock = select(source_watermarks.c.watermark).where(source_watermarks.c.source == update.source)
    if is_postgres(conn):
        lock = lock.with_for_update()
    merged = {**_decode(conn.execute(lock).scalar_one_or_none()), **update.values}
    row = {
        "source": update.source,
        "watermark": json.dumps(merged, sort_keys=True, default=str),
        "updated_at": dt.datetime.now(dt.UTC),
    }
    upsert(conn, source_watermarks, [row], keys=["source"])
    return merged


def list_watermarks(engine: Engine) -> list[dict[str, Any]]:
    """Every stored watermark: source, watermark (decoded) and updated_at."""
    with engine.connect() as conn:
        rows = conn.execute(select(source_watermarks).order_by(source_watermarks.c.source)).all()
    return [
        {"source": r.source, "watermark": _decode(r.watermark), "updated_at": r.updated_at}
        for r in rows
    ]


def reset_watermark(engine: Engine, source: str) -> bool:
    """Forget a source's watermark (its next run starts from the configured start)."""
    with engine.begin() as conn:
        n = conn.execute(delete(source_watermarks).where(source_watermarks.c.source == source))
    return bool(n.rowcount)
