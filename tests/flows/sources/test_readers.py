"""File readers: every row keeps its line number; unreadable files get one clear message."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from flows.errors import SeqcastError
from flows.sources.bundled import bundled
from flows.sources.readers import read_file


def test_csv_rows_carry_their_file_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "obs.csv"
    path.write_text("series_id,ts,value\na,2024-01-01T00:00:00Z,1\n\na,2024-01-01T01:00:00Z,x\n")
    batch = read_file(path)
    assert batch.read_all()["row_number"].tolist() == [2, 4]  # the blank line 3 is no row
    assert batch.read_all()["value"].tolist() == ["1", "x"]
    assert batch.source == str(path.resolve())


def test_bom_and_column_case_are_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffSeries_ID,TS,Value\na,2024-01-01T00:00:00Z,1\n".encode())
    assert read_file(path).read_all()[["series_id", "ts", "value"]].values.tolist() == [
        ["a", "2024-01-01T00:00:00Z", "1"]
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"id,time,v\n1,2,3\n", "missing column(s) series_id, ts, value"),
        (b"\xff\xfeseries_id,ts,value\n", "obs.csv:1: the header is not valid UTF-8"),
    ],
)
def test_bad_files_name_the_file_and_the_problem(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "obs.csv"
    path.write_bytes(content)
    with pytest.raises(SeqcastError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        read_file(path)
    assert str(path) in str(info.value)


def test_parquet_with_aware_timestamps(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "series_id": ["a", "a"],
            "ts": pd.date_range("2024-01-01", periods=2, freq="h", tz="UTC"),
            "value": [1.0, None],
        }
    )
    frame.to_parquet(tmp_path / "obs.parquet")
    rows = read_file(tmp_path / "obs.parquet").read_all()
    assert rows["ts"].tolist() == ["2024-01-01T00:00:00+00:00", "2024-01-01T01:00:00+00:00"]
    assert rows["value"].tolist() == ["1.0", ""]
    assert rows["row_number"].tolist() == [1, 2]


def test_missing_and_unknown_inputs(tmp_path: Path) -> None:
    with pytest.raises(SeqcastError, match="no such file"):
        read_file(tmp_path / "nope.csv")
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(SeqcastError, match="unknown file type"):
        read_file(tmp_path / "x.json")
    with pytest.raises(SeqcastError, match="unknown bundled data set"):
        bundled("weather")


def test_bundled_sets_are_real_and_complete() -> None:
    glucose, stocks = bundled("glucose"), bundled("stocks")
    assert (
        len(glucose.read_all()) == 52_281
        and glucose.declare is not None
        and glucose.declare.freq == "5min"
    )
    assert set(stocks.read_all()["series_id"]) == {
        f"stock-{t}" for t in ("AAPL", "FB", "GOOG", "IBM", "MSFT")
    }
    assert stocks.read_all()["ts"].str.endswith("+00:00").all()
