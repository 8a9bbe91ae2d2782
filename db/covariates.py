"""Covariates and static series attributes: idempotent ingest with rejects, and reads.

Both go through the ingest batches of :mod:`db.batches` like observations: a batch is one
source identified by ``(source, content_sha256)`` (the declaration is part of the source
label, so the same file ingested as another covariate is another batch), every row is
accepted or rejected with its reason, ``accepted + rejected == received``, and loading the
same content again is a no-op. Rows are merged by primary key: a stored row with the same
value is left alone, a changed value is updated. A batch is loaded in one transaction
(covariate and attribute files are small next to observations), and a source's watermark
move, when given, commits in that same transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import CompoundSelect, Connection, Engine, Select, Table, and_, func, or_, select

from db.batches import (
    IngestResult,
    batch_result,
    begin_batch,
    finish_batch,
    lock_batch,
    record_rows,
)
from db.covariate_validation import (
    AttributeDeclaration,
    CovariateDeclaration,
    validate_attributes,
    validate_covariates,
)
from db.observations import known_series_ids
from db.schema import covariates, series_attributes
from db.upsert import upsert
from db.validation import ValidatedBatch
from db.watermarks import WatermarkUpdate, advance_watermark

__all__ = [
    "AttributeDeclaration",
    "CovariateDeclaration",
    "covariate_kinds",
    "ingest_attributes",
    "ingest_covariates",
    "read_attributes",
    "read_covariates",
]

SCOPE_RANK = {"series": 0, "group": 1, "global": 2}  # the most specific value wins


@dataclass(frozen=True)
class _Loaded:
    """What loading one chunk did: the counts :func:`db.batches.record_rows` stores."""

    accepted: int
    rejects: pd.DataFrame
    inserted: int
    updated: int

    @classmethod
    def of(
        cls, validated: ValidatedBatch, repeats: pd.DataFrame, inserted: int, updated: int
    ) -> _Loaded:
        rejects = pd.concat([validated.rejected, repeats], ignore_index=True)
        return cls(len(validated.accepted) - len(repeats), rejects, inserted, updated)


def covariate_kinds(
    conn: Connection | Engine, names: Sequence[str] | None = None
) -> dict[str, str]:
    """Stored covariates (all, or those of ``names``) and their kind."""
    stmt = select(covariates.c.name, covariates.c.kind).distinct()
    if names is not None:
        stmt = stmt.where(covariates.c.name.in_(list(names)))
    if isinstance(conn, Engine):
        with conn.connect() as c:
            return {str(n): str(k) for n, k in c.execute(stmt).all()}
    return {str(n): str(k) for n, k in conn.execute(stmt).all()}


def _attribute_kinds(conn: Connection) -> dict[str, str]:
    stmt = select(series_attributes.c.name, series_attributes.c.kind).distinct()
    return {str(n): str(k) for n, k in conn.execute(stmt).all()}


def _merge(
    conn: Connection,
    table: Table,
    accepted: pd.DataFrame,
    keys: list[str],
    values: list[str],
    batch_id: int,
    stored: pd.DataFrame,
) -> tuple[int, int, pd.DataFrame]:
    """Upsert new and changed rows; return (inserted, updated, rows repeating this batch).

    ``stored`` holds the stored rows that may share a key with ``accepted`` (``keys``,
    ``values`` and ``batch_id`` columns); a row whose key this batch loaded already (an
    interrupted load resumed) is rejected rather than counted twice.
    """
    merged = accepted.merge(stored, on=keys, how="left", suffixes=("", "_stored"), indicator=True)
    found = (merged["_merge"] == "both").to_numpy()
    repeat = found & (merged["batch_id"] == batch_id).to_numpy()
    same = np.ones(len(merged), dtype=bool)
    for v in values:
        a, b = merged[v], merged[f"{v}_stored"]
        same &= ((a == b) | (a.isna() & b.isna())).to_numpy()
    new, changed = ~found, found & ~same & ~repeat
    write = merged[new | changed]
    rows: list[dict[str, Any]] = [
        {**{c: r[c] for c in keys}, **{v: _none(r[v]) for v in values}, "batch_id": batch_id}
        for r in write.to_dict("records")
    ]
    upsert(conn, table, rows, keys=keys)
    repeats = merged[repeat].assign(
        reason="repeats a row loaded earlier in this batch (the first is kept)"
    )
    return int(new.sum()), int(changed.sum()), repeats


def _none(value: object) -> object:
    if isinstance(value, float) and np.isnan(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value


def _load(
    engine: Engine,
    raw: pd.DataFrame,
    source: str,
    content_sha256: str,
    load: Callable[[Connection, pd.DataFrame, int], _Loaded],
    watermark: WatermarkUpdate | None = None,
) -> IngestResult:
    """The batch skeleton shared by covariates and attributes (see module docstring)."""
    batch_id, complete = begin_batch(engine, source, content_sha256)
    if complete:
        with engine.begin() as conn:
            if watermark is not None:  # the content is loaded: the source may move past it
                advance_watermark(conn, watermark)
            return batch_result(conn, batch_id, already_loaded=True)
    with engine.begin() as conn:
        if watermark is not None:
            advance_watermark(conn, watermark)
        last_row, _ = lock_batch(conn, batch_id)
        chunk = raw[raw["row_number"] > last_row]
        if not chunk.empty:
            done = load(conn, chunk, batch_id)
            record_rows(
                conn,
                batch_id,
                received=len(chunk),
                accepted=done.accepted,
                rejects=done.rejects,
                inserted=done.inserted,
                updated=done.updated,
                last_row=int(chunk["row_number"].max()),
            )
        return finish_batch(conn, batch_id)


def ingest_covariates(
    engine: Engine,
    raw: pd.DataFrame,
    source: str,
    content_sha256: str,
    declaration: CovariateDeclaration,
    assume_timezone: str | None = None,
    watermark: WatermarkUpdate | None = None,
) -> IngestResult:
    """Validate and load one covariate batch (rows as in
    :func:`db.covariate_validation.validate_covariates`); ``watermark`` (the source's
    progress) is merged in the batch's transaction, also when the content was loaded before."""

    def load(conn: Connection, chunk: pd.DataFrame, batch_id: int) -> _Loaded:
        known = known_series_ids(conn) if declaration.scope == "series" else set()
        validated = validate_covariates(
            chunk, declaration, known, covariate_kinds(conn), assume_timezone
        )
        accepted = validated.accepted.assign(scope=declaration.scope, kind=declaration.kind)
        stored = _stored_covariates(conn, accepted, declaration.scope)
        inserted, updated, repeats = _merge(
            conn, covariates, accepted, ["name", "scope", "scope_key", "ts"], ["kind", "value"],
            batch_id, stored,
        )  # fmt: skip
        repeats = repeats.rename(columns={"scope_key": "series_id"})
        return _Loaded.of(validated, repeats, inserted, updated)

    label = f"{source} ({declaration.describe()})"
    return _load(engine, raw, label, content_sha256, load, watermark)


def _stored_covariates(conn: Connection, accepted: pd.DataFrame, scope: str) -> pd.DataFrame:
    columns = ["name", "scope", "scope_key", "ts", "kind", "value", "batch_id"]
    rows: Sequence[Any] = []
    if not accepted.empty:
        c = covariates.c
        rows = conn.execute(
            select(*(c[k] for k in columns)).where(
                c.scope == scope,
                c.name.in_(accepted["name"].unique().tolist()),
                c.scope_key.in_(accepted["scope_key"].unique().tolist()),
                c.ts.between(accepted["ts"].min(), accepted["ts"].max()),
            )
        ).all()
    stored = pd.DataFrame(rows, columns=columns)
    stored["ts"] = pd.to_datetime(stored["ts"], utc=True).dt.as_unit("us")
    return stored


def ingest_attributes(
    engine: Engine,
    raw: pd.DataFrame,
    source: str,
    content_sha256: str,
    declaration: AttributeDeclaration,
) -> IngestResult:
    """Validate and load static series attributes (rows as in
    :func:`db.covariate_validation.validate_attributes`)."""

    def load(conn: Connection, chunk: pd.DataFrame, batch_id: int) -> _Loaded:
        validated = validate_attributes(
            chunk, declaration, known_series_ids(conn), _attribute_kinds(conn)
        )
        accepted = validated.accepted.assign(kind=declaration.kind)
        a = series_attributes.c
        columns = ["series_id", "name", "kind", "value_num", "value_text", "batch_id"]
        rows = conn.execute(
            select(*(a[k] for k in columns)).where(
                a.series_id.in_(accepted["series_id"].unique().tolist()),
                a.name.in_(accepted["name"].unique().tolist()),
            )
        ).all()
        stored = pd.DataFrame(rows, columns=columns).astype({"value_num": float})
        inserted, updated, repeats = _merge(
            conn, series_attributes, accepted, ["series_id", "name"],
            ["kind", "value_num", "value_text"], batch_id, stored,
        )  # fmt: skip
        repeats = repeats.assign(value=repeats["value_num"].where(repeats["value_text"].isna()))
        return _Loaded.of(validated, repeats, inserted, updated)

    label = f"{source} (attributes: {declaration.kind}, name {declaration.name or 'per row'})"
    return _load(engine, raw, label, content_sha256, load)


def _stored_rows(
    names: Sequence[str], groups: Mapping[str, str | None], since: dt.datetime | None
) -> Select[Any] | CompoundSelect[Any]:
    """The stored rows :func:`read_covariates` resolves: every scope that applies to these
    series; with ``since``, from it on plus each scope key's last row before it."""
    group_names = sorted({g for g in groups.values() if g})
    c = covariates.c
    mine = and_(
        c.name.in_(list(names)),
        or_(
            and_(c.scope == "series", c.scope_key.in_(list(groups))),
            and_(c.scope == "group", c.scope_key.in_(group_names)),
            c.scope == "global",
        ),
    )
    fields = (c.name, c.scope, c.scope_key, c.ts, c.value)
    if since is None:
        return select(*fields).where(mine)
    latest = (
        select(c.name, c.scope, c.scope_key, func.max(c.ts).label("ts"))
        .where(mine, c.ts < since)
        .group_by(c.name, c.scope, c.scope_key)
        .subquery()
    )
    carried = select(*fields).join(
        latest,
        and_(
            c.name == latest.c.name,
            c.scope == latest.c.scope,
            c.scope_key == latest.c.scope_key,
            c.ts == latest.c.ts,
        ),
    )
    return select(*fields).where(mine, c.ts >= since).union_all(carried)


def read_covariates(
    engine: Engine,
    names: Sequence[str],
    groups: Mapping[str, str | None],
    since: dt.datetime | None = None,
) -> pd.DataFrame:
    """Covariates ``names`` for the series of ``groups`` (series id -> its group or None).

    Returns a wide frame ``series_id, ts, <one column per name>`` (the shape the forecasters
    take). Per series, name and timestamp the most specific value wins: the series' own, then
    its group's, then the global one; NaN where none is stored.

    With ``since`` (a forecast's bounded read) only values at or after it are read, plus each
    stored covariate's last value before it per name and scope key, of which each series
    keeps its last (what ``missing: ffill`` carries into the window): the read does not grow
    with the history, and every row it returns equals the full read's.
    """
    columns = ["series_id", "ts", *names]
    if not names or not groups:
        return pd.DataFrame(columns=columns)
    with engine.connect() as conn:
        stored = pd.DataFrame(
            conn.execute(_stored_rows(names, groups, since)).all(),
            columns=["name", "scope", "scope_key", "ts", "value"],
        )
    if stored.empty:
        return pd.DataFrame(columns=columns)
    members = pd.DataFrame(
        [(s, g or "") for s, g in groups.items()], columns=["series_id", "group"]
    )
    own = stored[stored["scope"] == "series"].assign(series_id=lambda f: f["scope_key"])
    by_group = stored[stored["scope"] == "group"].merge(
        members, left_on="scope_key", right_on="group"
    )
    everyone = stored[stored["scope"] == "global"].merge(members, how="cross")
    long = pd.concat([own, by_group, everyone], ignore_index=True)
    long["rank"] = long["scope"].map(SCOPE_RANK)
    long["ts"] = pd.to_datetime(long["ts"], utc=True)
    long = long.sort_values("rank", kind="stable").drop_duplicates(
        ["series_id", "name", "ts"], keep="first"
    )
    if since is not None:  # before since, only the last value per series and name is exact
        earlier = long["ts"] < pd.Timestamp(since)
        last = long[earlier].sort_values("ts").groupby(["series_id", "name"]).tail(1)
        long = pd.concat([long[~earlier], last], ignore_index=True)
    wide = long.pivot(index=["series_id", "ts"], columns="name", values="value")
    wide = wide.reindex(columns=list(names)).reset_index().sort_values(["series_id", "ts"])
    wide.columns.name = None
    return wide.reset_index(drop=True)[columns]


def read_attributes(
    engine: Engine, series_ids: Sequence[str], names: Sequence[str] | None = None
) -> pd.DataFrame:
    """Static attributes of ``series_ids``: ``series_id, name, kind, value_num, value_text``."""
    a = series_attributes.c
    columns = ["series_id", "name", "kind", "value_num", "value_text"]
    stmt = select(*(a[k] for k in columns)).where(a.series_id.in_(list(series_ids)))
    if names is not None:
        stmt = stmt.where(a.name.in_(list(names)))
    with engine.connect() as conn:
        rows = conn.execute(stmt.order_by(a.series_id, a.name)).all()
    frame = pd.DataFrame(rows, columns=columns).astype({"value_num": float})
    text = frame["value_text"].astype(object)
    frame["value_text"] = text.where(text.notna(), None)
    return frame
