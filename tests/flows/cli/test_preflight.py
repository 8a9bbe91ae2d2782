"""User errors are one line before any Prefect server starts; the Prefect API a command gets."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from db import make_engine
from flows.cli import app, prefect_server
from flows.cli.prefect_server import PrefectServerError, TemporaryServer, local_server
from tests.support import REPO

runner = CliRunner()
OBS = "series_id,ts,value\n" + "".join(
    f"room-1,2024-01-01T{h:02d}:00:00+00:00,{20 + h % 3}\n" for h in range(24)
)
UNREACHABLE = "postgresql+psycopg://seqcast@127.0.0.1:1/nowhere"  # port 1: refused at once


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory with good and bad inputs and a migrated database (SEQCAST_DATABASE_URL)."""
    (tmp_path / "obs.csv").write_text(OBS)
    (tmp_path / "noheader.csv").write_text(OBS.split("\n", 1)[1])
    (tmp_path / "broken.csv.gz").write_bytes(b"\x1f\x8b" + b"not gzip after its magic")
    (tmp_path / "bad.yaml").write_text("sources: [oops")
    (tmp_path / "sources.yaml").write_text(
        f"sources: [{{name: lab, type: files, path: '{tmp_path}/*.csv', "
        "declare: {kind: sensor, freq: h}}]"
    )
    monkeypatch.setenv("SEQCAST_DATABASE_URL", f"sqlite:///{tmp_path / 'seqcast.db'}")
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    return tmp_path


@pytest.fixture
def no_prefect_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test when anything chooses or starts a Prefect server."""
    from prefect.server.api.server import SubprocessASGIServer

    def refuse(*_: object, **__: object) -> None:
        pytest.fail("a Prefect server was started before the user error was reported")

    monkeypatch.setattr(SubprocessASGIServer, "start", refuse)
    monkeypatch.setattr(TemporaryServer, "spawn", refuse)
    monkeypatch.setattr(prefect_server, "start", refuse)


FILE = ["--kind", "sensor", "--freq", "h"]
BACKWARDS = ["--start", "2024-02-01", "--end", "2024-01-01"]
USER_ERRORS = [
    (["ingest", "{dir}/missing.csv", *FILE], None, "missing.csv: no such file"),
    (["ingest", "{dir}/noheader.csv", *FILE], None, "noheader.csv:1: missing column(s)"),
    (["ingest", "{dir}/broken.csv.gz", *FILE], None, "broken.csv.gz: cannot be read"),
    (["ingest", "{dir}", *FILE], None, "is a directory"),
    (["ingest", "{dir}/obs.csv", "{dir}/missing.csv", *FILE], None, "1 of 2 files cannot be"),
    (["ingest", "{dir}/obs.csv", "--kind", "sensor"], None, "give kind and freq together"),
    (["ingest", "{dir}/obs.csv", "--kind", "x", "--freq", "hourly"], None, "not a pandas freq"),
    (["ingest", "--bundled", "nope"], None, "unknown bundled data set(s) ['nope']"),
    (["ingest", "run", "-c", "{dir}/bad.yaml"], None, "bad.yaml: not valid YAML"),
    (["ingest", "run", "-c", "{dir}/sources.yaml", "-s", "x"], None, "unknown source(s) ['x']"),
    (["ingest", "backfill", "lab", "-c", "{dir}/sources.yaml", *BACKWARDS], None, "start must"),
    (["ingest", "{dir}/obs.csv", *FILE], "unmigrated", "run `seqcast db upgrade`"),
    (["ingest", "{dir}/obs.csv", *FILE], UNREACHABLE, "cannot reach the database"),
    (["ingest", "run", "-c", "{dir}/sources.yaml"], "unmigrated", "run `seqcast db upgrade`"),
    (["pipeline"], "unmigrated", "run `seqcast db upgrade`"),
    (["score-text"], UNREACHABLE, "cannot reach the database"),
]


def _args(args: list[str], where: Path) -> list[str]:
    return [a.replace("{dir}", str(where)) for a in args]


def _database(which: str | None, where: Path) -> str | None:
    return f"sqlite:///{where / 'empty.db'}" if which == "unmigrated" else which


@pytest.mark.parametrize(("args", "database", "message"), USER_ERRORS)
def test_user_errors_are_one_line_before_any_prefect_server(
    project: Path,
    no_prefect_server: None,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    database: str | None,
    message: str,
) -> None:
    if database is not None:
        monkeypatch.setenv("SEQCAST_DATABASE_URL", _database(database, project) or "")
    result = runner.invoke(app, _args(args, project))
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert message in lines[0]
    assert "Traceback" not in result.output


def test_user_errors_load_neither_prefect_nor_mlflow_nor_torch(project: Path) -> None:
    script = (
        "import json, sys\n"
        "from flows.cli import app\n"
        "codes = [app(a, standalone_mode=False) for a in json.loads(sys.argv[1])]\n"
        "heavy = sorted(m for m in ('prefect', 'mlflow', 'torch') if m in sys.modules)\n"
        "print(json.dumps({'codes': codes, 'heavy': heavy}))\n"
    )
    cases = [_args(a, project) for a, database, _ in USER_ERRORS if database is None]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", script, json.dumps(cases)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen == {"codes": [1] * len(cases), "heavy": []}


def test_the_console_script_flushes_subnormals_before_flows_that_use_torch() -> None:
    script = (
        "import sys\n"
        "from flows.cli import common\n"
        "common.flush_subnormals_before_flows()  # what main() does\n"
        "common.ready_for_flows()\n"
        "assert 'torch' not in sys.modules  # a flow without torch (ingest) does not load it\n"
        "import torch  # a training flow's module\n"
        "common.ready_for_flows()\n"
        "from forecasting.device import flushing_denormals\n"
        "assert flushing_denormals()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "SEQCAST_FLUSH_DENORMAL": "1"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def _settings(api_url: str | None = None, ephemeral: bool = True) -> Any:
    """What prefect_server.start reads of Prefect's settings."""
    return SimpleNamespace(
        api=SimpleNamespace(url=api_url),
        ui_url=None,
        server=SimpleNamespace(
            ephemeral=SimpleNamespace(
                enabled=ephemeral, startup_timeout_seconds=20, model_fields_set=set()
            )
        ),
        to_environment_variables=lambda exclude_unset: {},
    )


@pytest.fixture
def choose(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[list[str]]:
    """Run prefect_server.start against fake settings; yields the API URLs it chose."""
    import prefect.settings

    chosen: list[str] = []
    monkeypatch.setattr(prefect_server, "_server", None)
    monkeypatch.setattr(prefect_server, "_use", lambda url, **_: chosen.append(url))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(prefect.settings, "get_current_settings", lambda: _settings())
    yield chosen


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/api/health" else 404)
        self.end_headers()
        self.wfile.write(b"true")

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[http.server.HTTPServer]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _make_up(where: Path, pid: int, port: int) -> None:
    servers = where / ".seqcast-servers"
    servers.mkdir()
    (servers / "prefect.pid").write_text(f"{pid}\n")
    (servers / "prefect.port").write_text(f"{port}\n")


def test_a_server_that_make_up_started_is_used_while_it_answers(
    tmp_path: Path, health_server: http.server.HTTPServer, choose: list[str]
) -> None:
    port = health_server.server_address[1]
    assert local_server(tmp_path) is None  # nothing started here
    _make_up(tmp_path, os.getpid(), port)
    assert local_server(tmp_path) == f"http://127.0.0.1:{port}/api"
    prefect_server.start()
    assert choose == [f"http://127.0.0.1:{port}/api"]
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / ".seqcast-servers" / "prefect.pid").write_text(str(dead.pid))
    assert local_server(tmp_path) is None  # stale pid file
    (tmp_path / ".seqcast-servers" / "prefect.pid").write_text(str(os.getpid()))
    _Health.status = 503
    try:
        assert local_server(tmp_path) is None  # running but not healthy
    finally:
        _Health.status = 200


def test_a_named_server_is_kept_and_a_temporary_one_is_started_otherwise(
    choose: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import prefect.settings

    monkeypatch.setattr(
        prefect.settings, "get_current_settings", lambda: _settings("http://x:1/api")
    )
    prefect_server.start()
    assert choose == []
    monkeypatch.setattr(prefect.settings, "get_current_settings", lambda: _settings())
    spawned: list[TemporaryServer] = []

    def spawn(self: TemporaryServer) -> None:
        self.port = 4321
        spawned.append(self)

    def answer(self: TemporaryServer) -> None:
        self.ready = True

    monkeypatch.setattr(TemporaryServer, "spawn", spawn)
    monkeypatch.setattr(TemporaryServer, "wait", answer)
    monkeypatch.setattr(TemporaryServer, "stop", lambda self, keep_log=False: None)
    prefect_server.start()
    assert choose == []  # the flow's modules import meanwhile; it is used once it answers
    prefect_server.wait()
    prefect_server.start()  # once per process
    prefect_server.wait()
    assert choose == ["http://127.0.0.1:4321/api"] and len(spawned) == 1
    assert spawned[0].timeout_s == prefect_server.STARTUP_TIMEOUT_S  # not Prefect's 20
    assert spawned[0].env["PREFECT__SERVER_EPHEMERAL"] == "1"


def test_no_server_and_no_temporary_one_allowed_is_a_user_error(
    choose: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import prefect.settings

    monkeypatch.setattr(
        prefect.settings, "get_current_settings", lambda: _settings(ephemeral=False)
    )
    with pytest.raises(PrefectServerError, match="set PREFECT_API_URL"):
        prefect_server.start()


def _waiting(tmp_path: Path, code: str, timeout_s: float) -> TemporaryServer:
    server = TemporaryServer(env={}, timeout_s=timeout_s, log=tmp_path / "server.log")
    server.log.write_text("")
    server.port = prefect_server._free_port()
    server.started = time.monotonic()
    server.process = subprocess.Popen([sys.executable, "-c", code])
    return server


def test_a_temporary_server_that_exits_or_never_answers_is_one_line(tmp_path: Path) -> None:
    exits = _waiting(tmp_path, "raise SystemExit(3)", timeout_s=60)
    with pytest.raises(PrefectServerError, match="exited with code 3") as info:
        exits.wait()
    assert "make up" in str(info.value) and exits.process is None
    silent = _waiting(tmp_path, "import time; time.sleep(60)", timeout_s=0.5)
    process = silent.process
    t0 = time.monotonic()
    with pytest.raises(PrefectServerError, match=r"did not answer within 0\.5 s") as info:
        silent.wait()
    assert time.monotonic() - t0 < 10  # wall clock, not sleeps
    assert prefect_server.TIMEOUT_SETTING in str(info.value)
    assert process is not None and process.poll() is not None  # stopped, not left behind


def test_prefects_own_server_failures_are_one_line() -> None:
    timed_out = RuntimeError(
        "Timed out while attempting to connect to ephemeral Prefect API server. stdout: ..."
    )
    assert prefect_server.TIMEOUT_SETTING in (prefect_server.explain(timed_out) or "")
    assert prefect_server.explain(ValueError("No Prefect API URL provided. Set it.")) == (
        "No Prefect API URL provided. Set it."
    )
    assert prefect_server.explain(RuntimeError("a bug")) is None


def _cli_env(where: Path) -> dict[str, str]:
    """A one-shot command's environment: no Prefect server named, a fresh Prefect home."""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "PREFECT_HOME": str(where / "prefect-home"),
        "SEQCAST_DATABASE_URL": f"sqlite:///{where / 'seqcast.db'}",
        "SEQCAST_PROGRESS": "0",
    }
    for name in ("PREFECT_API_URL", prefect_server.TIMEOUT_SETTING):
        env.pop(name, None)
    return env


def _cli(args: list[str], where: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # cwd is not the checkout, so a server `make up` runs there is not picked up.
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args],
        cwd=where,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.mark.slow
def test_a_temporary_server_slower_than_the_users_limit_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "obs.csv").write_text(OBS)
    env = {**_cli_env(tmp_path), prefect_server.TIMEOUT_SETTING: "1"}  # the user's own limit
    assert _cli(["db", "upgrade"], tmp_path, env).returncode == 0
    out = _cli(["ingest", "obs.csv", *FILE], tmp_path, env)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "did not answer within 1 s" in errors[0]
    assert prefect_server.TIMEOUT_SETTING in errors[0] and "make up" in errors[0]


@pytest.mark.slow
def test_one_process_starts_one_temporary_server_for_all_its_flows(tmp_path: Path) -> None:
    env = _cli_env(tmp_path)
    assert _cli(["db", "upgrade"], tmp_path, env).returncode == 0
    (tmp_path / "a.csv").write_text(OBS)
    (tmp_path / "b.csv").write_text(OBS.replace("room-1", "room-2"))
    script = (
        "from flows.cli import app\n"
        "for name in ('a.csv', 'b.csv'):\n"
        f"    assert app(['ingest', name, *{FILE!r}], standalone_mode=False) in (None, 0)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stderr.count("Starting temporary Prefect server") == 1, out.stderr
    assert "Starting temporary server" not in out.stderr  # Prefect's own never starts
    assert "Traceback" not in out.stdout + out.stderr


@pytest.mark.slow
def test_one_shot_ingest_succeeds_on_a_saturated_cpu(tmp_path: Path) -> None:
    env = _cli_env(tmp_path)
    assert _cli(["db", "upgrade"], tmp_path, env).returncode == 0
    busy = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range((os.cpu_count() or 1) + 1)
    ]
    try:
        for run in range(3):
            path = tmp_path / f"obs-{run}.csv"
            path.write_text(OBS.replace("room-1", f"room-{run}"))
            out = _cli(["ingest", path.name, *FILE], tmp_path, env)
            output = out.stdout + out.stderr
            assert out.returncode == 0, output
            assert "Traceback" not in output
    finally:
        for process in busy:
            process.kill()
            process.wait()
    engine = make_engine(env["SEQCAST_DATABASE_URL"])
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM observations")).scalar_one() == 3 * 24
    engine.dispose()
