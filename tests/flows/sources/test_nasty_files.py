"""A corpus of nasty files: every row is accepted or rejected with its line, nothing is lost."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text

from db.ingest import begin_batch, ingest_chunks, load_chunk
from db.observations import SeriesSpec, read_observations
from db.validation import validate_observations
from flows.sources.readers import read_file

SPEC = SeriesSpec(kind="sensor", freq="h")
HEADER = "series_id,ts,value\n"


def _load(engine: Engine, path: Path, chunk_rows: int = 3, declare: SeriesSpec | None = SPEC):
    batch = read_file(path, declare)
    return ingest_chunks(
        engine, batch.chunks(chunk_rows), batch.source, batch.content_sha256, batch.declare
    )


def _rejects(engine: Engine) -> dict[int, str]:
    with engine.connect() as conn:
        return dict(conn.execute(text("SELECT row_number, reason FROM rejected_rows")).all())


def test_the_usual_suspects(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "nasty.csv"
    path.write_text(
        HEADER
        + "s1,2024-01-01T02:00:00+00:00,3\n"  # 2  out of order: fine
        + "s1,2024-01-01T00:00:00+00:00,1\n"  # 3
        + "s1,2024-01-01T02:00:00+01:00,2\n"  # 4  01:00 UTC, another offset
        + "s1,2024-01-01T03:00:00+00:00,NaN\n"  # 5
        + "s1,2024-01-01T04:00:00+00:00,-inf\n"  # 6
        + "s1,2024-01-01T05:00:00+00:00,\n"  # 7
        + "s1,2024-01-01T06:00:00+00:00,12,5\n"  # 8  European decimal comma: 4 fields
        + "s1,2024-01-01T07:00:00,7\n"  # 9  naive
        + "s1,yesterday,7\n"  # 10
        + "\n"  # 11 blank: not a row
        + "s1,2024-01-01T00:00:00Z,1\n"  # 12 same value again
        + "s2,2024-01-01T00:00:00Z,1\n"  # 13
        + "s2,2024-01-01T00:00:00Z,2\n"  # 14 conflicting with 13 (same chunk)
        + '"s3","2024-01-01T00:00:00Z","4.5"\n'  # 15 quoted
        + "s1,2024-01-01T08:00:00Z"  # 16 truncated, no newline
    )
    result = _load(engine, path, chunk_rows=100)
    assert result.received == 14 and result.accepted + result.rejected == result.received
    reasons = _rejects(engine)
    assert set(reasons) == {5, 6, 7, 8, 9, 10, 12, 13, 14, 16}
    assert "not a finite number" in reasons[5] and "not a finite number" in reasons[6]
    assert reasons[7] == "empty value"
    assert reasons[8] == "expected 3 fields, found 4"
    assert "no UTC offset" in reasons[9] and "unparseable timestamp" in reasons[10]
    assert reasons[12] == "duplicate of row 3"
    assert "conflicting values" in reasons[13] and "conflicting values" in reasons[14]
    assert reasons[16] == "expected 3 fields, found 2 (the last line looks truncated)"
    obs = read_observations(engine, ["s1", "s3"])
    assert obs["ts"].dt.hour.tolist() == [0, 1, 2, 0]
    assert obs["value"].tolist() == [1.0, 2.0, 3.0, 4.5]


def test_invalid_utf8_line_is_rejected_and_the_rest_kept(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(
        (HEADER + "s1,2024-01-01T00:00:00Z,1\n").encode()
        + b"caf\xe9,2024-01-01T01:00:00Z,2\n"
        + b"s1,2024-01-01T02:00:00Z,3\n"
    )
    result = _load(engine, path)
    assert (result.received, result.accepted, result.rejected) == (3, 2, 1)
    assert _rejects(engine)[3].startswith("invalid UTF-8 at byte 3")


def test_semicolon_bom_gzip_and_crlf_are_read(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "excel.csv.gz"
    body = "\ufeffseries_id;ts;value\r\ns1;2024-01-01T00:00:00Z;1\r\ns1;2024-01-01T01:00:00Z;2\r\n"
    path.write_bytes(gzip.compress(body.encode()))
    result = _load(engine, path)
    assert (result.received, result.accepted) == (2, 2)


def test_unknown_series_without_declaration(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "u.csv"
    path.write_text(HEADER + "ghost,2024-01-01T00:00:00Z,1\n")
    result = _load(engine, path, declare=None)
    assert result.rejected == 1 and "unknown series 'ghost'" in _rejects(engine)[2]


def test_duplicates_across_chunks_first_row_wins(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text(
        HEADER
        + "s1,2024-01-01T00:00:00Z,1\n"  # 2
        + "s1,2024-01-01T01:00:00Z,2\n"  # 3
        + "s1,2024-01-01T00:00:00Z,1\n"  # 4  next chunk: same value
        + "s1,2024-01-01T01:00:00Z,9\n"  # 5  next chunk: conflict
    )
    result = _load(engine, path, chunk_rows=2)
    assert (result.received, result.accepted, result.rejected) == (4, 2, 2)
    reasons = _rejects(engine)
    assert reasons[4] == "duplicate of a row loaded earlier in this batch"
    assert reasons[5].startswith("conflicts with a value loaded earlier in this batch")
    assert read_observations(engine, ["s1"])["value"].tolist() == [1.0, 2.0]


def test_an_interrupted_load_resumes_without_loss_or_repeats(
    engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "big.csv"
    lines = [f"s1,2024-01-01T{h:02d}:00:00Z,{h}\n" for h in range(20)] + ["s1,bad,1\n"]
    path.write_text(HEADER + "".join(lines))
    batch = read_file(path, SPEC)
    batch_id, complete = begin_batch(engine, batch.source, batch.content_sha256)
    chunks = batch.chunks(7)
    load_chunk(engine, batch_id, next(chunks), SPEC)  # ... and then the process dies
    assert not complete
    result = _load(engine, path, chunk_rows=5)  # the next run, with another chunk size
    assert result.batch_id == batch_id and not result.already_loaded
    assert (result.received, result.accepted, result.rejected, result.inserted) == (21, 20, 1, 20)
    assert len(read_observations(engine, ["s1"])) == 20
    again = _load(engine, path)
    assert again.already_loaded and again.received == 21


def test_zero_byte_and_header_only_files(engine: Engine, tmp_path: Path) -> None:
    from flows.errors import SeqcastError

    (tmp_path / "zero.csv").write_bytes(b"")
    with pytest.raises(SeqcastError, match=r"zero.csv: the file is empty"):
        read_file(tmp_path / "zero.csv")
    (tmp_path / "header.csv").write_text(HEADER)
    result = _load(engine, tmp_path / "header.csv")
    assert (result.received, result.accepted, result.rejected) == (0, 0, 0)


CELLS = st.one_of(
    st.sampled_from(["1", "-2.5", "1e3", "NaN", "inf", "", "abc", " 7 ", "1,5"]),
    st.text(max_size=6),
)
TIMES = st.one_of(
    st.sampled_from(
        ["2024-01-01T00:00:00Z", "2024-01-01T00:00:00+05:30", "2024-01-01T00:00:00", "", "x"]
    ),
    st.datetimes(timezones=st.just(__import__("datetime").UTC)).map(lambda d: d.isoformat()),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "", "zz"]), TIMES, CELLS), max_size=40))
def test_every_row_is_accounted_for(rows: list[tuple[str, str, str]]) -> None:
    raw = pd.DataFrame(rows, columns=["series_id", "ts", "value"])
    raw["row_number"] = range(2, len(raw) + 2)
    out = validate_observations(raw, known_series={"a", "b"})
    assert len(out.accepted) + len(out.rejected) == len(raw)
    assert set(out.accepted["row_number"]).isdisjoint(out.rejected["row_number"])
    assert (out.rejected["reason"] != "").all()
    if len(out.accepted):
        assert out.accepted["value"].map(lambda v: v == v and abs(v) != float("inf")).all()
        assert not out.accepted.duplicated(["series_id", "ts"]).any()
        assert out.accepted["series_id"].isin({"a", "b"}).all()
