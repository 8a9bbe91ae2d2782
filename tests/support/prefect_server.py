"""A real Prefect server for the service tests: started on a free loopback port with its own
PREFECT_HOME (SQLite); everything it started is stopped afterwards."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from tests.support import REPO

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(
    args: list[str], env: dict[str, str], log: Path, cwd: Path = REPO
) -> subprocess.Popen[bytes]:
    """Start ``args`` in its own process group, output to ``log``."""
    return subprocess.Popen(
        args,
        cwd=cwd,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: stopped with everything it started
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@contextlib.contextmanager
def running_prefect_server(home: Path) -> Iterator[dict[str, str]]:
    """``prefect server start`` on a free loopback port with PREFECT_HOME ``home``; yields the
    environment that reaches it (PREFECT_API_URL set, other PREFECT_ variables dropped)."""
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="5",
        PREFECT_LOGGING_LEVEL="WARNING",
    )
    log = home / "server.log"
    server = start(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env,
        log,
    )
    try:
        deadline = time.monotonic() + 150
        while True:
            assert server.poll() is None, f"server exited: {log.read_text()[-2000:]}"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{api}/health", timeout=5).status_code == 200:
                    break
            assert time.monotonic() < deadline, f"no health in 150 s: {log.read_text()[-2000:]}"
            time.sleep(1)
        yield {**env, "PREFECT_API_URL": api}
    finally:
        stop(server)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, 0)
        raise AssertionError("the Prefect server's process group outlived it")


RETRYABLE = {429, 502, 503}  # as Prefect's own client: e.g. 503 while its SQLite is locked


def request(env: dict[str, str], method: str, path: str, body: Any = None) -> Any:
    """One REST call to the server, retried like Prefect's client retries (up to 8 times,
    after the server's Retry-After or a growing pause); the decoded answer."""
    for attempt in range(9):
        response = httpx.request(method, f"{env['PREFECT_API_URL']}{path}", json=body, timeout=30)
        if response.status_code not in RETRYABLE or attempt == 8:
            break
        time.sleep(float(response.headers.get("Retry-After") or min(2**attempt, 10)))
    response.raise_for_status()
    return response.json()


def post(env: dict[str, str], path: str, body: dict[str, Any]) -> Any:
    return request(env, "POST", path, body)
