"""SQL source: new rows of a table in another database, by a watermark column.

Each run reads rows whose watermark column is greater than the stored watermark, in order,
in chunks; a chunk ends on a change of the watermark value, so rows that share a value are
never split between a committed chunk and a later one. Every chunk is one batch whose
watermark move commits with its rows.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterator, Sequence
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from db.engine import DatabaseError, database_url
from db.watermarks import WatermarkUpdate
from flows.errors import SeqcastError
from flows.sources.base import SourceItems, SourceLoad, Window, format_ts, frame_sha256, rows_frame
from flows.sources.config import SqlSource


def encode_mark(value: Any) -> dict[str, Any]:
    """A watermark value as JSON, with its type so it binds back as the same type."""
    if isinstance(value, dt.datetime):
        return {"type": "datetime", "value": value.isoformat()}
    if isinstance(value, dt.date):
        return {"type": "date", "value": value.isoformat()}
    if isinstance(value, bool | int):
        return {"type": "int", "value": int(value)}
    if isinstance(value, float | decimal.Decimal):
        return {"type": "float", "value": float(value)}
    return {"type": "str", "value": str(value)}


def decode_mark(mark: dict[str, Any]) -> Any:
    kind, value = mark.get("type"), mark.get("value")
    if value is None:
        return None
    if kind == "datetime":
        return dt.datetime.fromisoformat(value)
    if kind == "date":
        return dt.date.fromisoformat(value)
    return value


def _bound(probe: Any, ts: dt.datetime) -> Any:
    """A window bound in the type the ts column holds (as seen in one value)."""
    utc = ts.astimezone(dt.UTC)
    if isinstance(probe, dt.datetime):
        return utc if probe.tzinfo is not None else utc.replace(tzinfo=None)
    if isinstance(probe, dt.date):
        return utc.date()
    if isinstance(probe, int | float | decimal.Decimal):
        return utc.timestamp()
    text = str(probe)
    if len(text) > 19 and text[19:].lstrip(".0123456789"):  # the stored text carries an offset
        return utc.isoformat(sep="T" if "T" in text else " ")
    return utc.replace(tzinfo=None).isoformat(sep="T" if "T" in text else " ")


def _table(cfg: SqlSource) -> tuple[sa.TableClause, sa.ColumnClause[Any], sa.ColumnClause[Any]]:
    wm_name = cfg.watermark_column or cfg.ts_column
    names = dict.fromkeys(
        [
            cfg.ts_column,
            cfg.value_column,
            wm_name,
            *([cfg.series_column] if cfg.series_column else []),
        ]
    )
    table = sa.table(cfg.table, *[sa.column(n) for n in names], schema=cfg.db_schema)
    return table, table.c[wm_name], table.c[cfg.ts_column]


def _to_frame(cfg: SqlSource, rows: Sequence[sa.Row[Any]]) -> pd.DataFrame:
    out: list[dict[str, Any]] = []
    for r in rows:
        m = r._mapping
        series = m[cfg.series_column] if cfg.series_column else ""
        out.append(
            {
                "series_id": cfg.series_id.format(series=series),
                "ts": format_ts(m[cfg.ts_column], "iso"),
                "value": "" if m[cfg.value_column] is None else str(m[cfg.value_column]),
                "read_error": "",
            }
        )
    return rows_frame(out)


def source_engine(source: str, url: str) -> sa.Engine:
    """An engine on another database: postgresql:// gets psycopg 3, as for seqcast's own, but
    a plain engine, so that seqcast's SQLite pragmas (WAL) never change someone else's file."""
    try:
        return sa.create_engine(database_url(url))
    except DatabaseError:
        raise SeqcastError(f"source {source}: the url is not a SQLAlchemy URL") from None


def read_failed(source: str, table: str, engine: sa.Engine, exc: Exception) -> SeqcastError:
    """The error for a failed read of another database (its URL shown without a password)."""
    url = engine.url.render_as_string(hide_password=True)
    first = str(exc).splitlines()[0]
    return SeqcastError(f"source {source}: reading {table} from {url} failed: {first}")


def chunks_after(
    engine: sa.Engine,
    table: sa.TableClause,
    wm: sa.ColumnClause[Any],
    lo: Any,
    where: list[sa.ColumnElement[bool]],
    chunk_rows: int,
) -> Iterator[Sequence[sa.Row[Any]]]:
    """The rows with ``wm > lo`` (all when ``lo`` is None) in ``wm`` order, about
    ``chunk_rows`` at a time; rows sharing a ``wm`` value are never split between chunks.

    Each chunk is read in its own connection, after the consumer finished the one before.
    """
    while True:
        cond = [*where, *([wm > lo] if lo is not None else [])]
        with engine.connect() as conn:
            upper = conn.execute(
                sa.select(wm).where(*cond).order_by(wm).offset(chunk_rows - 1).limit(1)
            ).scalar()
            if upper is not None:
                cond.append(wm <= upper)
            rows = conn.execute(sa.select(table).where(*cond).order_by(wm)).all()
        if not rows:
            return
        lo = rows[-1]._mapping[wm.name]
        yield rows
        if upper is None:
            return


def sql_loads(cfg: SqlSource, watermark: dict[str, Any], window: Window | None) -> SourceItems:
    """Chunks of new rows (or of the window's rows, for a backfill) as loads."""
    engine = source_engine(cfg.name, cfg.resolved_url())
    table, wm, ts = _table(cfg)
    label = f"sql:{cfg.name}"
    try:
        with engine.connect() as conn:
            probe = conn.execute(sa.select(ts).where(ts.is_not(None)).limit(1)).scalar()
        if probe is None:
            return
        lo = decode_mark(watermark) if window is None else None
        ranged: list[sa.ColumnElement[bool]] = [wm.is_not(None)]
        if window is not None:
            # A backfill replays a time range of ts_column, whatever the watermark column is.
            ranged += [ts >= _bound(probe, window.start), ts < _bound(probe, window.end)]
        for rows in chunks_after(engine, table, wm, lo, ranged, cfg.chunk_rows):
            lo = rows[-1]._mapping[wm.name]
            frame = _to_frame(cfg, rows)
            mark = None if window is not None else WatermarkUpdate(cfg.name, encode_mark(lo))
            sha = frame_sha256(frame)
            yield SourceLoad(label, sha, [frame], mark)
    except SQLAlchemyError as exc:
        raise read_failed(cfg.name, cfg.table, engine, exc) from None
    finally:
        engine.dispose()
