"""The Prefect API that a command's flows talk to, ready before its first flow starts.

In this order: the server that ``PREFECT_API_URL`` (or the Prefect profile) names; else the
server that ``make up`` started in this directory, when it answers (one line says so); else a
temporary server for this process. That last one is what Prefect itself would start (the same
command and settings, see prefect/server/api/server.py ``SubprocessASGIServer``) with two
differences. It starts as soon as the command's inputs are checked, so it boots while the
flow's modules import. And it is waited for on the wall clock, watching the process:
Prefect's own wait counts only its 0.1 s sleeps against
PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS (default 20), which a loaded machine
exceeds, and it fails with a traceback. Here the limit is that setting when the user set it
(environment or profile), else :data:`STARTUP_TIMEOUT_S`; a server that exits, or does not
answer in time, is one line naming the setting and the lasting alternatives.

Importing this module is cheap; prefect is imported by :func:`start`, after the checks.
"""

from __future__ import annotations

import atexit
import http.client
import importlib.util
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from flows.errors import SeqcastError

STARTUP_TIMEOUT_S = 180
"""Seconds a temporary server may take to answer; a fresh one on 2 saturated cores took 60."""
SERVERS_DIR = ".seqcast-servers"  # the Makefile's $(SERVERS)
TIMEOUT_SETTING = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"


class PrefectServerError(SeqcastError):
    """No Prefect API to run flows against (the temporary server did not come up)."""


def _health(port: int, timeout: float = 2.0) -> bool:
    """Whether a Prefect server on 127.0.0.1:port answers its health check (no proxies)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/api/health")
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def local_server(project_dir: Path) -> str | None:
    """The API URL of the Prefect server ``make up`` runs for ``project_dir``, if it answers."""
    servers = project_dir / SERVERS_DIR
    try:
        pid = int((servers / "prefect.pid").read_text().strip())
        port = int((servers / "prefect.port").read_text().strip())
        os.kill(pid, 0)  # still running (a stale pid file after a reboot is common)
    except (OSError, ValueError):
        return None
    return f"http://127.0.0.1:{port}/api" if _health(port, timeout=1.0) else None


def _free_port() -> int:
    """A free port where Prefect puts its own (8000-8999: outside the range the system hands
    out to outgoing connections, so none takes it while the server boots)."""
    for port in random.sample(range(8000, 9000), 50):
        if _port_free(port):
            return port
    raise PrefectServerError("no free port in 8000-8999 for a temporary Prefect server")


@dataclass
class TemporaryServer:
    """A Prefect server subprocess for this process's flows, stopped when the process exits."""

    env: dict[str, str]
    timeout_s: float
    ui: bool = False  # whether flow logs may link to a UI (the user set PREFECT_UI_URL)
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    started: float = 0.0
    ready: bool = False

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def spawn(self) -> None:
        """Start the server process; returns at once (:meth:`wait` waits for it)."""
        spec = importlib.util.find_spec("prefect")  # finds the package without importing it
        app_dir = Path(spec.origin).parent.parent if spec and spec.origin else Path.cwd()
        self.port = _free_port()
        if self.log is not None:
            self.log.unlink(missing_ok=True)
        fd, name = tempfile.mkstemp(prefix="seqcast-prefect-server-", suffix=".log")
        self.log = Path(name)
        self.started = time.monotonic()
        with os.fdopen(fd, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "--app-dir", str(app_dir), "--factory",
                 "prefect.server.api.server:create_app", "--host", "127.0.0.1",
                 "--port", str(self.port), "--log-level", "error", "--lifespan", "on"],
                env=self.env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def wait(self) -> None:
        """Block until the server answers; one-line PrefectServerError when it cannot."""
        assert self.process is not None
        deadline = self.started + self.timeout_s
        while not self.ready:
            code = self.process.poll()
            if code is not None:
                if not _port_free(self.port):  # another program took the port first: retry
                    self.spawn()
                    continue
                self.stop(keep_log=True)
                raise PrefectServerError(
                    f"the temporary Prefect server exited with code {code} while starting "
                    f"(its output: {self.log}); start a lasting one with `make up` and set "
                    "PREFECT_API_URL"
                )
            if _health(self.port):
                self.ready = True
            elif time.monotonic() > deadline:
                self.stop(keep_log=True)
                raise PrefectServerError(
                    f"the temporary Prefect server did not answer within {self.timeout_s:g} s "
                    f"({TIMEOUT_SETTING} raises it; its output: {self.log}); or start a lasting "
                    "one with `make up` and set PREFECT_API_URL"
                )
            else:
                time.sleep(0.1)

    def stop(self, keep_log: bool = False) -> None:
        """Terminate the server (kill it after 5 s), as Prefect stops its own."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self.log is None or keep_log or not self.log.exists():
            return
        if self.log.stat().st_size:  # quiet when all is well: what it said is worth a look
            print(f"the temporary Prefect server logged messages: {self.log}", file=sys.stderr)
        else:
            self.log.unlink()


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


_server: TemporaryServer | None = None


def start(project_dir: Path | None = None) -> None:
    """Choose this process's Prefect API; a temporary server starts in the background."""
    global _server
    if _server is not None:
        return
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    if settings.api.url:  # named by the user, or chosen earlier in this process
        return
    url = local_server(project_dir or Path.cwd())
    if url is not None:
        print(f"using the Prefect server that `make up` started: {url}", file=sys.stderr)
        _use(url)
        return
    ephemeral = settings.server.ephemeral
    if not ephemeral.enabled:
        raise PrefectServerError(
            "no Prefect server: set PREFECT_API_URL (e.g. after `make up`) or allow a temporary "
            "one with PREFECT_SERVER_ALLOW_EPHEMERAL_MODE=true"
        )
    user_set = "startup_timeout_seconds" in ephemeral.model_fields_set
    env = {
        **os.environ,
        # What Prefect gives its own temporary server: no UI, ephemeral mode, the settings.
        "PREFECT_UI_ENABLED": "0",
        "PREFECT__SERVER_EPHEMERAL": "1",
        "PREFECT__SERVER_FINAL": "1",
        **settings.to_environment_variables(exclude_unset=True),
    }
    timeout = ephemeral.startup_timeout_seconds if user_set else STARTUP_TIMEOUT_S
    _server = TemporaryServer(env, float(timeout), ui=settings.ui_url is not None)
    _server.spawn()
    atexit.register(_server.stop)
    print(
        f"Starting temporary Prefect server on http://127.0.0.1:{_server.port} "
        "(`make up` runs a lasting one)",
        file=sys.stderr,
    )


def wait() -> None:
    """Block until the chosen Prefect API can take flows (a no-op for a named server)."""
    global _server
    if _server is not None and not _server.ready:
        try:
            _server.wait()
        except PrefectServerError:
            _server = None  # stopped; a later command in this process may try again
            raise
        # Its port is final now (a start that lost its port to another program moves).
        # It serves no UI and ends with the command: no "View at" links to it in flow logs.
        _use(_server.api_url, ui=_server.ui)


def _use(url: str, ui: bool = True) -> None:
    """Point this process (and the flow-run processes it starts) at ``url``."""
    os.environ["PREFECT_API_URL"] = url
    if not ui:
        os.environ["PREFECT_UI_URL"] = ""
    # Prefect read its settings when it was imported; this is how its plugins apply theirs.
    from prefect.context import refresh_global_settings_context

    refresh_global_settings_context()


def explain(exc: BaseException) -> str | None:
    """One line for Prefect's own failures to provide an API, else None (a bug: traceback)."""
    text = str(exc)
    if text.startswith("Timed out while attempting to connect to ephemeral Prefect API server"):
        return (
            f"Prefect's temporary server did not start in time; raise {TIMEOUT_SETTING}, or "
            "start a lasting server with `make up` and set PREFECT_API_URL"
        )
    if text.startswith("No Prefect API URL provided"):
        return text.splitlines()[0]
    return None
