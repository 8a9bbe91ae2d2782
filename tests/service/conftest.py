"""One real Prefect server for the service tests of a session (started on first use)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.prefect_server import running_prefect_server


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """``prefect server start`` on a free loopback port with its own PREFECT_HOME (SQLite)."""
    with running_prefect_server(tmp_path_factory.mktemp("prefect-server")) as env:
        yield env
