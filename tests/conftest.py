"""Shared fixtures: isolated state per session, SQLite and PostgreSQL engines, real data."""

from __future__ import annotations

import gzip
import io
import os
import tempfile
import uuid
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine, create_engine, text

PG_URL_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def pytest_configure(config: pytest.Config) -> None:
    # Isolate every kind of state before anything imports prefect or mlflow.
    os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="seqcast-test-prefect-")
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
    os.environ.pop("PREFECT_API_URL", None)
    os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")
    os.environ.setdefault("DO_NOT_TRACK", "true")


def _postgres_url() -> str:
    return os.environ.get("SEQCAST_TEST_POSTGRES_URL") or PG_URL_DEFAULT


def _postgres_reachable() -> str | None:
    """None when PostgreSQL answers, else the reason it does not."""
    try:
        engine = create_engine(_postgres_url(), connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:  # any driver or network error means "not reachable"
        return f"PostgreSQL at {_postgres_url()} not reachable: {str(exc).splitlines()[0]}"


@pytest.fixture(scope="session")
def postgres_available() -> None:
    reason = _postgres_reachable()
    if reason is None:
        return
    if os.environ.get("SEQCAST_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"{reason} (SEQCAST_REQUIRE_POSTGRES=1 makes it mandatory)")
    pytest.skip(reason)


def _sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    from db import make_engine
    from db.migrate import upgrade

    engine = make_engine(f"sqlite:///{tmp_path / 'seqcast.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


def _postgres_engine() -> Iterator[Engine]:
    """A fresh schema per test inside the shared database, dropped afterwards."""
    from db import make_engine
    from db.migrate import upgrade

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(_postgres_url())
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    engine = make_engine(_postgres_url(), connect_args={"options": f"-csearch_path={schema}"})
    upgrade(engine)
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A migrated, empty database: SQLite file, or a throwaway PostgreSQL schema."""
    if request.param == "sqlite":
        yield from _sqlite_engine(tmp_path)
    else:
        request.getfixturevalue("postgres_available")
        yield from _postgres_engine()


def _bundled_csv(name: str) -> pd.DataFrame:
    data = (resources.files("bokeh_sampledata") / "_data" / name).read_bytes()
    return pd.read_csv(io.BytesIO(gzip.decompress(data)))


@pytest.fixture(scope="session")
def glucose() -> pd.DataFrame:
    """The real CGM series (bokeh_sampledata) as a long frame."""
    raw = _bundled_csv("CGM.csv.gz")
    frame = pd.DataFrame(
        {
            "series_id": "cgm-glucose",
            "ts": pd.to_datetime(raw["datetime"]).dt.tz_localize("UTC"),
            "value": raw["glucose"].astype(float),
        }
    )
    return frame.drop_duplicates(["series_id", "ts"], keep=False).reset_index(drop=True)


@pytest.fixture(scope="session")
def stocks() -> pd.DataFrame:
    """Real daily adjusted closes of five tickers (bokeh_sampledata) as a long frame."""
    raw = _bundled_csv("stocks.csv.gz")
    return pd.DataFrame(
        {
            "series_id": "stock-" + raw["Ticker"],
            "ts": pd.to_datetime(raw["Date"]).dt.tz_localize("UTC"),
            "value": raw["Adj Close"].astype(float),
        }
    )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of a migrated, empty database, for code that builds its own engines (flows)."""
    from db import make_engine
    from db.migrate import upgrade

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'seqcast.db'}"
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        yield url
        return
    request.getfixturevalue("postgres_available")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(_postgres_url())
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    url = f"{_postgres_url()}?options=-csearch_path%3D{schema}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    try:
        yield url
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One temporary Prefect API for every test that runs flows."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str | None]:
    """With SEQCAST_TEST_MLFLOW=server: a real `mlflow server` on PostgreSQL for the session."""
    if os.environ.get("SEQCAST_TEST_MLFLOW") != "server":
        yield None
        return
    from tests.support.mlflow_server import running_mlflow_server

    with running_mlflow_server(_postgres_url(), tmp_path_factory.mktemp("mlflow-server")) as uri:
        yield uri


@pytest.fixture
def service_env(
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    prefect_harness: None,
    mlflow_server: str | None,
) -> dict[str, str]:
    """Environment of a flow run: its own database, MLflow store and working directory.

    The MLflow store is a SQLite file per test, or (SEQCAST_TEST_MLFLOW=server) the session's
    MLflow server with its registry and runs emptied before each test.
    """
    monkeypatch.chdir(tmp_path)  # MLflow's local artifact root (./mlruns) lands here
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    if mlflow_server is not None:
        from tests.support.mlflow_server import empty_store

        empty_store()
        tracking = mlflow_server
    env = {
        "SEQCAST_DATABASE_URL": database_url,
        "MLFLOW_TRACKING_URI": tracking,
        "SEQCAST_EXPERIMENT": "seqcast-test",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    import mlflow

    # A URI set by an earlier test's flow (mlflow.set_tracking_uri) outranks the variable.
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    return env
