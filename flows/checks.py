"""Checks a flow runs first: is the database there and migrated, is MLflow reachable."""

from __future__ import annotations

from db import make_engine
from db.migrate import require_current
from flows.settings import Settings
from flows.tasks import io_task


@io_task(retries=3)
def check_database() -> None:
    """Fail with what is wrong (unreachable or not migrated) before any work starts."""
    engine = make_engine(Settings.from_env().database_url)
    try:
        require_current(engine)
    finally:
        engine.dispose()


@io_task(retries=3)
def check_tracking() -> None:
    """Point MLflow at the configured store; fail naming it when it cannot be used."""
    # Imported here: mlflow takes most of a second to load, and flows that log nothing to it
    # (ingest) import this module for check_database.
    from flows.tracking.runs import configure

    configure(Settings.from_env())
