"""Checks a flow runs first: is the database there and migrated, is MLflow reachable."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from db import make_engine
from db.migrate import require_current
from flows.errors import retry_unless_user_error
from flows.settings import Settings
from flows.tracking import configure


@task(
    retries=3,
    retry_delay_seconds=[2, 10, 30],
    retry_condition_fn=retry_unless_user_error,
    cache_policy=NO_CACHE,
)
def check_database() -> None:
    """Fail with what is wrong (unreachable or not migrated) before any work starts."""
    engine = make_engine(Settings.from_env().database_url)
    try:
        require_current(engine)
    finally:
        engine.dispose()


@task(
    retries=3,
    retry_delay_seconds=[2, 10, 30],
    retry_condition_fn=retry_unless_user_error,
    cache_policy=NO_CACHE,
)
def check_tracking() -> None:
    """Point MLflow at the configured store; fail naming it when it cannot be used."""
    configure(Settings.from_env())
