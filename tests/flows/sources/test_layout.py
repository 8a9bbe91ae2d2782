"""Files as users have them (flows.sources.layout): other column names, one column per series,
one series per file, decimal commas, Parquet with its own names. Each loads the same rows as
the long file would, rejects keep their line numbers and reasons, and a repeat is a no-op."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from db.ingest import ingest_chunks
from db.observations import SeriesSpec, read_observations
from flows.cli import app
from flows.errors import SeqcastError
from flows.sources.config import FilesSource
from flows.sources.folder import file_loads
from flows.sources.layout import FileLayout, read_laid_out
from flows.sources.readers import read_file

SPEC = SeriesSpec(kind="sensor", freq="h")
TS = pd.date_range("2024-03-01", periods=6, freq="h", tz="UTC")
VALUES = {
    "North-1": [1.5, 2.25, 3.0, 4.5, 5.0, 6.75],
    "south_2": [10.0, 11.5, 12.0, 13.0, 14.5, 15.0],
}


def _load(engine: Engine, path: Path, layout: FileLayout) -> list[dict[str, object]]:
    results = []
    for batch in read_laid_out(path, SPEC, layout):
        result = ingest_chunks(
            engine, batch.chunks(4), batch.source, batch.content_sha256, batch.declare
        )
        assert result.accepted + result.rejected == result.received
        results.append({"source": batch.source, **result.as_dict()})
    return results


def _stored(engine: Engine) -> pd.DataFrame:
    frame = read_observations(engine, sorted(VALUES))
    return frame.sort_values(["series_id", "ts"]).reset_index(drop=True)


def _reference(engine: Engine, tmp_path: Path) -> pd.DataFrame:
    long = pd.DataFrame(
        [
            (sid, t.isoformat(), v)
            for sid, vs in VALUES.items()
            for t, v in zip(TS, vs, strict=True)
        ],
        columns=["series_id", "ts", "value"],
    )
    long.to_csv(tmp_path / "long.csv", index=False)
    batch = read_file(tmp_path / "long.csv", SPEC)
    ingest_chunks(engine, batch.chunks(), batch.source, batch.content_sha256, batch.declare)
    stored = _stored(engine)
    with engine.begin() as conn:
        for table in ("observations", "rejected_rows"):
            conn.execute(text(f"DELETE FROM {table}"))
    return stored


def test_renamed_semicolon_decimal_comma_columns_load_as_the_long_file(
    engine: Engine, tmp_path: Path
) -> None:
    expected = _reference(engine, tmp_path)
    lines = ["Zeit;Sensor;Messwert"] + [
        f"{t.isoformat()};{sid};{str(v).replace('.', ',')}"
        for sid, vs in VALUES.items()
        for t, v in zip(TS, vs, strict=True)
    ]
    path = tmp_path / "export.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    layout = FileLayout(columns={"ts": "zeit", "series_id": "SENSOR", "value": "Messwert"},
                        decimal=",")  # fmt: skip
    (result,) = _load(engine, path, layout)
    assert (result["received"], result["accepted"], result["rejected"]) == (12, 12, 0)
    pd.testing.assert_frame_equal(_stored(engine), expected)
    (again,) = _load(engine, path, layout)
    assert again["already_loaded"] is True
    # Read the same file with the decimal point: every value with a comma is a reject.
    (dotted,) = _load(engine, path, layout.model_copy(update={"decimal": "."}))
    assert dotted["already_loaded"] is False and dotted["rejected"] > 0


def test_a_wide_file_is_one_batch_per_series_column(engine: Engine, tmp_path: Path) -> None:
    expected = _reference(engine, tmp_path)
    frame = pd.DataFrame({"Time": [t.isoformat() for t in TS], **VALUES}).astype(object)
    frame.loc[2, "south_2"] = "oops"  # line 4
    frame.loc[4, "North-1"] = ""  # line 6: a blank cell is no reading, not a row
    path = tmp_path / "wide.csv"
    frame.to_csv(path, index=False)
    layout = FileLayout(wide=True, columns={"ts": "time"})
    results = {r["source"].rsplit("#", 1)[1]: r for r in _load(engine, path, layout)}
    assert set(results) == {"North-1", "south_2"}  # the headers, case kept, are the series
    north, south = results["North-1"], results["south_2"]
    assert (north["received"], north["accepted"], north["rejected"]) == (5, 5, 0)
    assert (south["received"], south["accepted"], south["rejected"]) == (6, 5, 1)
    with engine.connect() as conn:
        (reject,) = conn.execute(
            text("SELECT row_number, series_id, value, reason FROM rejected_rows")
        ).all()
    assert (reject.row_number, reject.series_id, reject.value) == (4, "south_2", "oops")
    kept = expected.drop(index=expected.index[
        ((expected["series_id"] == "south_2") & (expected["ts"] == TS[2]))
        | ((expected["series_id"] == "North-1") & (expected["ts"] == TS[4]))
    ]).reset_index(drop=True)  # fmt: skip
    pd.testing.assert_frame_equal(_stored(engine), kept)
    assert all(r["already_loaded"] for r in _load(engine, path, layout))


def test_one_series_per_file_and_parquet_with_its_own_names(engine: Engine, tmp_path: Path) -> None:
    expected = _reference(engine, tmp_path)
    for sid, values in VALUES.items():
        # Parquet keeps the timestamps' type: a zoned datetime column called "when"
        pd.DataFrame({"when": TS, "reading": values}).to_parquet(tmp_path / f"{sid}.parquet")
        layout = FileLayout(series_id=sid, columns={"ts": "when", "value": "reading"})
        (result,) = _load(engine, tmp_path / f"{sid}.parquet", layout)
        assert result["accepted"] == 6 and result["rejected"] == 0
    pd.testing.assert_frame_equal(_stored(engine), expected)


def test_a_files_source_reads_its_layout_and_moves_the_watermark_with_the_last_column(
    tmp_path: Path,
) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    pd.DataFrame({"ts": [t.isoformat() for t in TS], **VALUES}).to_csv(drop / "w.csv", index=False)
    cfg = FilesSource.model_validate(
        {"name": "wide-drop", "type": "files", "path": str(drop),
         "declare": {"kind": "sensor", "freq": "h"}, "layout": {"wide": True}}
    )  # fmt: skip
    loads = list(file_loads(cfg))
    assert [load.source.rsplit("#", 1)[1] for load in loads] == ["North-1", "south_2"]  # type: ignore[union-attr]
    assert [load.watermark is not None for load in loads] == [False, True]  # type: ignore[union-attr]
    rows = pd.concat(list(loads[1].chunks))  # type: ignore[union-attr]
    assert rows["series_id"].unique().tolist() == ["south_2"]
    np.testing.assert_array_equal(rows["value"].astype(float), VALUES["south_2"])
    with pytest.raises(ValueError, match="layout and covariate"):
        FilesSource.model_validate(
            {"name": "x", "type": "files", "path": "d", "layout": {"wide": True},
             "covariate": {"kind": "past_only", "scope": "global", "name": "c"}}
        )  # fmt: skip


def test_layouts_that_cannot_be_refuse_with_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="give wide or series_id, not both"):
        FileLayout(wide=True, series_id="a")
    with pytest.raises(ValueError, match=r"columns maps \['value'\]"):
        FileLayout(wide=True, columns={"value": "v"})
    with pytest.raises(SeqcastError, match="write NAME=HEADER pairs"):
        FileLayout.parse_columns("ts:date")
    assert FileLayout.parse_columns(" ts=Date , value=t ") == {"ts": "Date", "value": "t"}
    path = tmp_path / "w.csv"
    path.write_text("stamp,a\n2024-01-01T00:00:00+00:00,1\n")
    with pytest.raises(
        SeqcastError, match=r"no time column 'ts' for a wide file; found \['stamp', 'a'\]"
    ):
        read_laid_out(path, SPEC, FileLayout(wide=True))
    with pytest.raises(
        SeqcastError,
        match=r"no column for value \('value'\); found \['stamp', 'a'\]; name the file's "
        r"columns with --columns",
    ):
        read_laid_out(path, SPEC, FileLayout(columns={"ts": "stamp", "series_id": "a"}))
    # The long reader's error says how to load another layout.
    with pytest.raises(SeqcastError, match=r"--wide.*--series-id NAME"):
        read_file(path)


def test_the_cli_refuses_contradicting_layout_options_before_any_work(tmp_path: Path) -> None:
    path = tmp_path / "w.csv"
    path.write_text("ts,a\n2024-01-01T00:00:00+00:00,1\n")
    result = CliRunner().invoke(app, ["ingest", str(path), "--wide", "--series-id", "a"])
    assert result.exit_code == 1 and "give wide or series_id, not both" in result.output
    result = CliRunner().invoke(app, ["ingest", str(path), "--columns", "time"])
    assert result.exit_code == 1 and "write NAME=HEADER pairs" in result.output
    assert "Traceback" not in result.output
