"""`make up` / `make down`: both servers answer on loopback only, and are gone afterwards."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.support import REPO

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not sys.platform.startswith("linux")
        or any(shutil.which(tool) is None for tool in ("make", "setsid", "curl")),
        reason="make up needs Linux with make, setsid and curl",
    ),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _address(hex_addr: str) -> str:
    raw = bytes.fromhex(hex_addr)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    return socket.inet_ntop(socket.AF_INET6, words)


def listening_on(port: int) -> set[str]:
    """Local addresses with a listening TCP socket on ``port`` (any process)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            addr, hex_port = fields[1].split(":")
            if fields[3] == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(_address(addr))
    return found


def make(target: str, args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI", "MAKEFLAGS", "MFLAGS")
    }
    return subprocess.run(
        ["make", "--no-print-directory", target, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_make_up_serves_on_loopback_and_make_down_stops(tmp_path: Path) -> None:
    state = tmp_path / "servers"
    mlflow_port, prefect_port = free_port(), free_port()
    args = [
        f"SERVERS={state}",
        f"MLFLOW_PORT={mlflow_port}",
        f"PREFECT_PORT={prefect_port}",
        "MLFLOW_WORKERS=1",
        "UP_TIMEOUT=150",
    ]
    try:
        up = make("up", args)
        assert up.returncode == 0, up.stdout + up.stderr
        assert f"export MLFLOW_TRACKING_URI=http://127.0.0.1:{mlflow_port}\n" in up.stdout
        assert f"export PREFECT_API_URL=http://127.0.0.1:{prefect_port}/api\n" in up.stdout
        for url in (
            f"http://127.0.0.1:{mlflow_port}/health",
            f"http://127.0.0.1:{prefect_port}/api/health",
        ):
            with urllib.request.urlopen(url, timeout=10) as response:
                assert response.status == 200, url
        assert listening_on(mlflow_port) == {"127.0.0.1"}
        assert listening_on(prefect_port) == {"127.0.0.1"}
        groups = {name: int((state / f"{name}.pid").read_text()) for name in ("mlflow", "prefect")}
        assert (state / "prefect" / "prefect.db").is_file()
        assert (state / "mlflow-server.db").is_file()

        again = make("up", args)  # already running: only checked
        assert again.returncode == 0, again.stdout + again.stderr
        assert "already running" in again.stdout
    finally:
        down = make("down", args)
    assert down.returncode == 0, down.stdout + down.stderr
    for name, pgid in groups.items():
        with pytest.raises(ProcessLookupError):
            os.killpg(pgid, 0)  # no process of the server's group is left
        assert not (state / f"{name}.pid").exists()
    assert listening_on(mlflow_port) == set()
    assert listening_on(prefect_port) == set()

    idle = make("down", args)  # nothing runs: harmless
    assert idle.returncode == 0
    assert "not running" in idle.stdout
