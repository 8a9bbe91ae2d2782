"""Checks a flow runs first: is the database there and migrated, is MLflow reachable."""

from __future__ import annotations

from db import make_engine
from db.migrate import require_current
from flows.settings import Settings
from flows.tasks import io_task
from flows.tracking.runs import configure


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
    configure(Settings.from_env())
