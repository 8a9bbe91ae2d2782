"""Document sources (project file ``documents:``): files by hash, an HTTP API by publication
time, a SQL table by a watermark column; each through the one document ingest path."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import sqlalchemy as sa
from pydantic import TypeAdapter
from sqlalchemy import Engine, text

from db.watermarks import read_watermark
from flows.errors import SeqcastError
from flows.sources.doc_config import DocumentSourceConfig
from flows.sources.doc_loads import http_documents, run_document_source
from tests.flows.sources.fake_clock import FakeClock

CONFIG = TypeAdapter(DocumentSourceConfig)


def _docs(engine: Engine) -> list[tuple[str, str, str | None]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT d.doc_id, d.text, l.label FROM documents d LEFT JOIN document_labels l "
                "ON l.doc_id = d.doc_id ORDER BY d.doc_id"
            )
        ).all()
    return [(str(a), str(b), c) for a, b, c in rows]


def _reasons(engine: Engine) -> list[tuple[int, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT row_number, reason FROM rejected_rows ORDER BY row_number")
        ).all()
    return [(int(n), str(r)) for n, r in rows]


def test_files_load_once_reject_bad_rows_and_report_unreadable_files(
    engine: Engine, tmp_path: Path
) -> None:
    inbox = tmp_path / "docs"
    inbox.mkdir()
    (inbox / "a.csv").write_text(
        "doc_id,text,label,published_at\n"
        "r1,A fine film,pos,2024-05-01T10:00:00+00:00\n"
        "r2,   ,neg,2024-05-01T11:00:00+00:00\n"
        "r3,Dull and long,neg,2024-05-02\n"
        "r4,Loved it,pos,2024-05-02T09:00:00Z\n"
    )
    (inbox / "broken.csv").write_text("body,label\nno text column here,pos\n")
    cfg = CONFIG.validate_python(
        {"name": "reviews", "type": "files", "path": str(inbox), "task": "sentiment"}
    )
    results, failures = run_document_source(engine, cfg)
    assert len(failures) == 1 and "broken.csv" in failures[0] and "text column" in failures[0]
    [r] = results
    assert (r["received"], r["accepted"], r["rejected"], r["inserted"]) == (4, 2, 2, 2)
    assert r["received"] == r["accepted"] + r["rejected"]
    assert _docs(engine) == [("r1", "A fine film", "pos"), ("r4", "Loved it", "pos")]
    reasons = dict(_reasons(engine))
    assert reasons[3] == "empty document"  # line 3 of the file: r2
    assert "no UTC offset" in reasons[4]
    again, _ = run_document_source(engine, cfg)
    assert again[0]["already_loaded"] and len(_docs(engine)) == 2


class DocApi:
    """A news API: documents published in [start, end), as the query asks."""

    def __init__(self, docs: list[dict[str, Any]]) -> None:
        self.docs = docs
        self.queries: list[dict[str, list[str]]] = []
        self.status = 200
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = parse_qs(urlparse(self.path).query)
                api.queries.append(query)
                start = query["from"][0].replace("Z", "+00:00")
                picked = [d for d in api.docs if d.get("published", "9") >= start]
                body = json.dumps({"items": picked}).encode()
                self.send_response(api.status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/news?from={{start}}"


@pytest.fixture
def news() -> Iterator[DocApi]:
    api = DocApi(
        [
            {"id": "n1", "body": "Shares rally", "published": "2024-05-01T08:00:00+00:00"},
            {"id": "n2", "body": "Profit warning", "published": "2024-05-01T09:00:00+00:00"},
            {"id": "n3", "published": "2024-05-01T09:30:00+00:00"},  # no text
        ]
    )
    thread = threading.Thread(target=api.server.serve_forever, daemon=True)
    thread.start()
    yield api
    api.server.shutdown()
    api.server.server_close()
    thread.join(5)


def _news_source(api: DocApi, **extra: Any) -> Any:
    return CONFIG.validate_python(
        {
            "name": "news",
            "type": "http",
            "url": api.url,
            "records": "items",
            "text_field": "body",
            "published_field": "published",
            **extra,
        }
    )


def test_http_loads_what_is_new_since_the_watermark(engine: Engine, news: DocApi) -> None:
    cfg = _news_source(news)
    [first], failures = run_document_source(engine, cfg)
    assert failures == []
    assert (first["received"], first["accepted"], first["rejected"]) == (3, 2, 1)
    assert [d[0] for d in _docs(engine)] == ["n1", "n2"]
    assert "no field 'body'" in _reasons(engine)[0][1]
    mark = read_watermark(engine, "news")
    assert mark == {"published_at": "2024-05-01T09:30:00+00:00"}
    news.docs.append({"id": "n4", "body": "Merger talks", "published": "2024-05-02T07:00:00Z"})
    [second], _ = run_document_source(engine, cfg)
    # The second request starts at the watermark, so only n3 (the boundary) and n4 come back.
    assert news.queries[1]["from"] == ["2024-05-01T09:30:00Z"]
    assert (second["received"], second["accepted"], second["inserted"]) == (2, 1, 1)
    assert [d[0] for d in _docs(engine)] == ["n1", "n2", "n4"]


def test_http_failure_is_reported_and_moves_nothing(engine: Engine, news: DocApi) -> None:
    news.status = 503
    clock = FakeClock()
    cfg = _news_source(news, retries=2, backoff_s=1.0)
    items = list(http_documents(cfg, {}, clock))
    assert len(items) == 1 and "HTTP 503 on all 3 attempt(s)" in items[0].message  # type: ignore[union-attr]
    assert clock.sleeps == [1.0, 2.0]
    results, failures = run_document_source(engine, _news_source(news, retries=0))
    assert results == [] and len(failures) == 1
    assert read_watermark(engine, "news") == {} and _docs(engine) == []


def test_sql_loads_new_rows_by_watermark_column(engine: Engine, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cms.db'}"
    up = sa.create_engine(url)
    with up.begin() as conn:
        conn.execute(text("CREATE TABLE posts (id INTEGER PRIMARY KEY, body TEXT, mood TEXT)"))
        conn.execute(text("INSERT INTO posts VALUES (1, 'Great service', 'pos'), (2, NULL, 'neg')"))
    cfg = CONFIG.validate_python(
        {
            "name": "cms",
            "type": "sql",
            "url": url,
            "table": "posts",
            "text_column": "body",
            "id_column": "id",
            "label_column": "mood",
            "watermark_column": "id",
            "task": "sentiment",
            "chunk_rows": 1,
        }
    )
    results, failures = run_document_source(engine, cfg)
    assert failures == [] and [r["accepted"] for r in results] == [1, 0]
    assert [r["rejected"] for r in results] == [0, 1]  # id 2 has no text
    assert read_watermark(engine, "cms") == {"type": "int", "value": 2}
    with up.begin() as conn:
        conn.execute(text("INSERT INTO posts VALUES (3, 'Slow and rude', 'neg')"))
    results, _ = run_document_source(engine, cfg)
    assert [r["received"] for r in results] == [1]
    assert _docs(engine) == [("1", "Great service", "pos"), ("3", "Slow and rude", "neg")]
    up.dispose()


def test_sql_source_errors_name_the_source(engine: Engine, tmp_path: Path) -> None:
    cfg = CONFIG.validate_python(
        {
            "name": "cms",
            "type": "sql",
            "url": f"sqlite:///{tmp_path / 'missing.db'}",
            "table": "posts",
            "text_column": "body",
            "watermark_column": "id",
        }
    )
    with pytest.raises(SeqcastError, match=r"source cms: reading posts from .* failed"):
        run_document_source(engine, cfg)
