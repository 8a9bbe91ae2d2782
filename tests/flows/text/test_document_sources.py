"""The ``ingest-text`` flow and ``seqcast ingest-text --sources`` on the project file's
document sources: what is new loads, a broken source fails the run after the others."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from db import make_engine
from flows.cli import app
from flows.errors import SeqcastError
from flows.text.ingest import ingest_text
from flows.text.params import IngestTextParams

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _project(tmp_path: Path, with_dead_api: bool) -> Path:
    inbox = tmp_path / "incoming-docs"
    inbox.mkdir(exist_ok=True)
    (inbox / "day1.csv").write_text("text,label\nGreat value,pos\nBroke in a week,neg\n,pos\n")
    dead = f"http://127.0.0.1:{_free_port()}/items?from={{start}}"
    extra = (
        f"  - {{name: wire, type: http, url: '{dead}', retries: 0, timeout_s: 2}}\n"
        if with_dead_api
        else ""
    )
    path = tmp_path / "seqcast.yaml"
    path.write_text(
        "version: 1\ndocuments:\n"
        f"  - {{name: inbox, type: files, path: '{inbox}/*.*', task: sentiment}}\n" + extra
    )
    return path


def _labels(url: str) -> list[tuple[str, str]]:
    engine = make_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT d.text, l.label FROM documents d JOIN document_labels l "
                "ON l.doc_id = d.doc_id WHERE l.task = 'sentiment' ORDER BY d.text"
            )
        ).all()
    engine.dispose()
    return [(str(a), str(b)) for a, b in rows]


def test_flow_loads_document_sources_and_fails_after_the_others(
    service_env: dict[str, str], tmp_path: Path
) -> None:
    config = _project(tmp_path, with_dead_api=True)
    with pytest.raises(SeqcastError, match=r"1 document source part\(s\).*http:wire: GET"):
        ingest_text(IngestTextParams(config=str(config)))
    url = service_env["SEQCAST_DATABASE_URL"]
    assert _labels(url) == [("Broke in a week", "neg"), ("Great value", "pos")]
    config = _project(tmp_path, with_dead_api=False)
    [again] = ingest_text(IngestTextParams(config=str(config)))
    assert again["already_loaded"] and again["rejected"] == 1
    (tmp_path / "incoming-docs" / "day2.csv").write_text("text,label\nWorks fine,pos\n")
    runs = ingest_text(IngestTextParams(config=str(config)))
    new = [r for r in runs if not r["already_loaded"]]
    assert [(r["source"].rsplit("/", 1)[-1], r["inserted"]) for r in new] == [("day2.csv", 1)]


def test_cli_ingest_text_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_harness: None
) -> None:
    runner = CliRunner()
    monkeypatch.setenv("SEQCAST_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.chdir(tmp_path)
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    _project(tmp_path, with_dead_api=False)
    done = runner.invoke(app, ["ingest-text", "--sources"])
    assert done.exit_code == 0, done.output
    assert "day1.csv:4: empty document" in done.output
    unknown = runner.invoke(app, ["ingest-text", "--source", "nope"])
    assert unknown.exit_code == 1 and "unknown document source(s) ['nope']" in unknown.output
    assert "Traceback" not in unknown.output
