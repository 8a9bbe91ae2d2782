"""db.batches: the one bookkeeping that series and document ingest share, on both databases."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from sqlalchemy import Engine, select, text

from db.batches import (
    BatchState,
    begin_batch,
    create_batch,
    find_batch,
    first_rejects,
    record_rows,
    store_rejects,
)
from db.batches import IngestResult as BatchResult
from db.documents import DocumentBatch, DocumentRow, ingest_documents
from db.ingest import IngestResult, ingest_chunks, load_chunk
from db.observations import SeriesSpec, declare_series
from db.schema import ingest_batches, rejected_rows

SPEC = SeriesSpec(kind="sensor", freq="h")
TABLES = (
    "series",
    "observations",
    "documents",
    "document_labels",
    "ingest_batches",
    "rejected_rows",
)


def _series_rows() -> pd.DataFrame:
    rows = [
        ("s1", "2024-01-01T00:00:00Z", "1"),  # 2
        ("s1", "2024-01-01T01:00:00Z", "2"),  # 3
        ("s1", "2024-01-01T02:00:00Z", "abc"),  # 4  not a number
        ("s1", "2024-01-01T03:00:00", "4"),  # 5  no offset
        ("s1", "2024-01-01T04:00:00Z", "5"),  # 6
        ("s1", "2024-01-01T00:00:00Z", "1"),  # 7  repeat of row 2, in a later chunk
    ]
    frame = pd.DataFrame(rows, columns=["series_id", "ts", "value"])
    frame["row_number"] = range(2, len(frame) + 2)
    return frame


def _chunks(frame: pd.DataFrame, size: int) -> list[pd.DataFrame]:
    return [frame.iloc[i : i + size] for i in range(0, len(frame), size)]


def _documents() -> DocumentBatch:
    rows = [
        DocumentRow(2, "Shares soar", "d1", label="1"),
        DocumentRow(3, "  ", "d2", label="0"),  # empty
        DocumentRow(5, "Shares slump", "d3", published_at="2024-03-01T09:00:00", label="0"),
        DocumentRow(6, "Shares soar", "d1", label="1"),  # repeat of line 2
        DocumentRow(7, "Quiet day", "d4", label="1"),
    ]
    return DocumentBatch(
        "news.csv", "n" * 64, "sentiment", rows, read_rejects=[(4, "expected 3 columns, got 1")]
    )


def _dump(engine: Engine) -> dict[str, list[tuple[object, ...]]]:
    with engine.connect() as conn:
        return {
            t: sorted((tuple(r) for r in conn.execute(text(f"SELECT * FROM {t}"))), key=repr)
            for t in TABLES
        }


def _stored(engine: Engine, batch_id: int) -> dict[str, object]:
    with engine.connect() as conn:
        return dict(
            conn.execute(select(ingest_batches).where(ingest_batches.c.batch_id == batch_id))
            .mappings()
            .one()
        )


def _reasons(engine: Engine, batch_id: int) -> dict[int, str]:
    return dict(first_rejects(engine, batch_id, limit=100))


def _assert_reconciled(engine: Engine, result: IngestResult) -> None:
    """The result, the batch row and rejected_rows tell the same story."""
    assert result.accepted + result.rejected == result.received
    stored = _stored(engine, result.batch_id)
    assert stored["status"] == "complete"
    for key in ("received", "accepted", "rejected", "inserted", "updated"):
        assert stored[key] == getattr(result, key), key
    assert len(_reasons(engine, result.batch_id)) == result.rejected


def test_series_and_documents_share_the_batch_bookkeeping(engine: Engine) -> None:
    assert IngestResult is BatchResult  # one result type for both kinds of ingest
    series = ingest_chunks(engine, _chunks(_series_rows(), 3), "s.csv", "s" * 64, SPEC)
    assert (series.received, series.accepted, series.rejected) == (6, 3, 3)
    _assert_reconciled(engine, series)
    reasons = _reasons(engine, series.batch_id)
    assert reasons[4] == "value 'abc' is not a finite number"
    assert "no UTC offset" in reasons[5]
    assert reasons[7] == "duplicate of a row loaded earlier in this batch"

    docs = ingest_documents(engine, _documents())
    assert (docs.received, docs.accepted, docs.rejected, docs.inserted) == (6, 2, 4, 2)
    _assert_reconciled(engine, docs)
    reasons = _reasons(engine, docs.batch_id)
    assert reasons == {
        3: "empty document",
        4: "expected 3 columns, got 1",
        5: "published_at '2024-03-01T09:00:00' has no UTC offset; write e.g. +00:00",
        6: "duplicate of line 2",
    }
    assert _stored(engine, docs.batch_id)["last_row"] == 7
    assert _stored(engine, series.batch_id)["last_row"] == 7


def test_loading_the_same_content_again_changes_nothing(engine: Engine) -> None:
    first_series = ingest_chunks(engine, _chunks(_series_rows(), 4), "s.csv", "s" * 64, SPEC)
    first_docs = ingest_documents(engine, _documents())
    before = _dump(engine)
    again_series = ingest_chunks(engine, _chunks(_series_rows(), 2), "s.csv", "s" * 64, SPEC)
    again_docs = ingest_documents(engine, _documents())
    assert _dump(engine) == before
    for first, again in ((first_series, again_series), (first_docs, again_docs)):
        assert again.already_loaded and not first.already_loaded
        assert again.batch_id == first.batch_id
        assert (again.received, again.accepted, again.rejected) == (
            first.received,
            first.accepted,
            first.rejected,
        )


def test_a_batch_stays_loading_until_finished_and_resumes_where_it_stopped(
    engine: Engine,
) -> None:
    raw = _series_rows()
    state = begin_batch(engine, "s.csv", "s" * 64)
    assert state == BatchState(state.batch_id, complete=False)
    load_chunk(engine, state.batch_id, raw.iloc[:3], SPEC)  # ... and then the process dies
    with engine.connect() as conn:
        assert find_batch(conn, "s.csv", "s" * 64) == (state.batch_id, False)
    assert _stored(engine, state.batch_id)["last_row"] == 4
    assert begin_batch(engine, "s.csv", "s" * 64) == (state.batch_id, False)
    # The next run reads the whole file again, in other chunks: rows up to 4 are skipped.
    result = ingest_chunks(engine, _chunks(raw, 4), "s.csv", "s" * 64, SPEC)
    assert result.batch_id == state.batch_id and not result.already_loaded
    assert (result.received, result.accepted, result.rejected) == (6, 3, 3)
    _assert_reconciled(engine, result)
    with engine.connect() as conn:
        assert find_batch(conn, "s.csv", "s" * 64) == (state.batch_id, True)


def test_counts_that_do_not_add_up_are_refused(engine: Engine) -> None:
    rejects = pd.DataFrame({"row_number": [3], "reason": ["bad"]})
    with engine.begin() as conn:
        batch_id = create_batch(conn, "x.csv", "x" * 64)
    with (
        pytest.raises(ValueError, match=r"1 accepted \+ 1 rejected rows != 3 received"),
        engine.begin() as conn,
    ):
        record_rows(conn, batch_id, received=3, accepted=1, rejects=rejects, inserted=1,
                    updated=0, last_row=4)  # fmt: skip
    stored = _stored(engine, batch_id)
    assert (stored["received"], stored["rejected"], stored["status"]) == (0, 0, "loading")
    assert first_rejects(engine, batch_id) == []


def test_a_reject_stored_again_keeps_its_first_reason(engine: Engine) -> None:
    with engine.begin() as conn:
        declare_series(conn, ["s1"], SPEC, dt.datetime.now(dt.UTC))
        batch_id = create_batch(conn, "x.csv", "x" * 64)
        store_rejects(
            conn,
            batch_id,
            pd.DataFrame(
                {"row_number": [2], "series_id": ["s1"], "ts": [None], "value": [float("nan")],
                 "reason": ["empty timestamp"]}
            ),
        )  # fmt: skip
        store_rejects(conn, batch_id, pd.DataFrame({"row_number": [2], "reason": ["other"]}))
    with engine.connect() as conn:
        rows = conn.execute(select(rejected_rows).where(rejected_rows.c.batch_id == batch_id))
        assert [tuple(r) for r in rows] == [(batch_id, 2, "s1", None, None, "empty timestamp")]
