"""db/views/*.sql are the views' definitions: what migration 0006 creates on both databases.

The views created from the files give the rows the migrations before them gave (0005), on the
analysts' test data plus scored documents, and 0006 downgrades to 0005 and upgrades again.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from importlib import resources
from pathlib import Path

import pandas as pd
import pytest
from alembic import command
from sqlalchemy import Engine, text

from db.documents import DocumentBatch, DocumentRow, ingest_documents
from db.migrate import _config, current_revision, head_revision, upgrade
from db.text_predictions import TextPrediction, write_text_predictions
from db.views import VIEW_NAMES, view_sql
from tests.support import analyst_data

ROOT = Path(__file__).resolve().parents[2]
FILES = resources.files("db.views")
DIALECTS = ("sqlite", "postgresql")


def _sql_files() -> list[str]:
    return sorted(f.name for f in FILES.iterdir() if f.name.endswith(".sql"))


def _header(name: str) -> str:
    """The leading comment block of the view's main file."""
    lines = (FILES / f"{name}.sql").read_text(encoding="utf-8").splitlines()
    return "\n".join(line for line in lines[: lines.index(f"CREATE VIEW {name} AS")])


def test_every_view_has_one_file_per_dialect_that_creates_it() -> None:
    owners = {re.sub(r"(\.(sqlite|postgresql))?\.sql$", "", f) for f in _sql_files()}
    assert owners == set(VIEW_NAMES), "a file for an unknown view, or a view without a file"
    for name in VIEW_NAMES:
        assert _header(name).startswith(f"-- {name}: ")
        for dialect in DIALECTS:
            sql = view_sql(name, dialect)
            body = "\n".join(ln for ln in sql.splitlines() if not ln.startswith("--"))
            statements = [s for s in body.split(";") if s.strip()]
            assert len(statements) == 1, (name, dialect)
            assert re.search(rf"^CREATE VIEW {name} AS$", sql, re.M), (name, dialect)
    assert "substr(published_at" in view_sql("daily_sentiment", "sqlite")
    assert "AT TIME ZONE 'UTC'" in view_sql("daily_sentiment", "postgresql")
    with pytest.raises(ValueError, match="unknown view"):
        view_sql("forecasts", "sqlite")


def test_the_files_are_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["db"]
    for name in _sql_files():
        assert any(fnmatch.fnmatch(f"views/{name}", p) for p in patterns), name


def test_docs_point_analysts_at_the_files() -> None:
    doc = (ROOT / "docs" / "analysts.md").read_text()
    assert "db/views/" in doc
    for name in VIEW_NAMES:
        assert f"db/views/{name}.sql" in doc, name


def _add_scored_documents(engine: Engine) -> None:
    """Documents about two of the series, scored by two versions of a sentiment model."""
    rows = [
        DocumentRow(2, "Apple beats estimates", "n1", published_at="2013-03-01T14:00:00+00:00",
                    series_id="stock-AAPL"),
        DocumentRow(3, "Apple guidance cut", "n2", published_at="2013-03-01T23:30:00-05:00",
                    series_id="stock-AAPL"),
        DocumentRow(4, "IBM flat", "n3", published_at="2013-03-04T09:00:00+00:00",
                    series_id="stock-IBM"),
        DocumentRow(5, "Markets quiet", "n4"),
    ]  # fmt: skip
    result = ingest_documents(engine, DocumentBatch("news.csv", "e" * 64, None, rows))
    assert result.accepted == 4
    v1 = [TextPrediction(d, "1", p, p) for d, p in (("n1", 0.9), ("n2", 0.4), ("n3", 0.6))]
    write_text_predictions(engine, "seqcast-sentiment", "1", "r1", v1)
    v2 = [TextPrediction("n2", "0", 0.8, 0.2), TextPrediction("n4", "1", 0.7, 0.7)]
    write_text_predictions(engine, "seqcast-sentiment", "2", "r2", v2)
    tags = [TextPrediction("n1", tags=[["Apple", "S-ORG"], ["beats", "O"]])]
    write_text_predictions(engine, "seqcast-tagger", "1", "r3", tags)


def _snapshot(engine: Engine) -> dict[str, tuple[list[str], list[tuple[object, ...]]]]:
    """Every view's columns and rows (sorted: views have no order)."""
    out = {}
    with engine.connect() as conn:
        for name in VIEW_NAMES:
            result = conn.execute(text(f"SELECT * FROM {name}"))
            rows = sorted((tuple(r) for r in result), key=repr)
            out[name] = (list(result.keys()), rows)
    return out


def _definitions(engine: Engine) -> dict[str, str]:
    """PostgreSQL's normalised text of each view (empty on SQLite, which keeps the source)."""
    if engine.dialect.name != "postgresql":
        return {}
    with engine.connect() as conn:
        return {
            n: conn.execute(text(f"SELECT pg_get_viewdef('{n}')")).scalar_one() for n in VIEW_NAMES
        }


def _downgrade(engine: Engine, revision: str) -> None:
    config = _config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, revision)


@pytest.fixture(scope="module")
def data(stocks: pd.DataFrame) -> analyst_data.AnalystData:
    return analyst_data.build(stocks)


@pytest.mark.slow
def test_views_from_the_files_give_the_rows_of_0005_and_0006_downgrades(
    engine: Engine, data: analyst_data.AnalystData
) -> None:
    assert head_revision() >= "0006"  # later migrations pass through 0006 too
    analyst_data.fill(engine, data)
    _add_scored_documents(engine)
    at_head, defs_at_head = _snapshot(engine), _definitions(engine)
    for name, (columns, rows) in at_head.items():
        assert rows, f"{name} is empty: the comparison would prove nothing"
        header = _header(name)
        for column in columns:  # the file's header describes every column
            assert re.search(rf"^--   {column} ", header, re.M), (name, column)
    assert len(at_head["daily_sentiment"][1]) == 3  # AAPL on Mar 1 and Mar 2 (UTC), IBM

    _downgrade(engine, "0005")
    assert current_revision(engine) == "0005"
    assert _snapshot(engine) == at_head
    assert _definitions(engine) == defs_at_head  # the same SQL, as PostgreSQL parsed it

    assert upgrade(engine) == head_revision()
    assert _snapshot(engine) == at_head
    assert _definitions(engine) == defs_at_head
