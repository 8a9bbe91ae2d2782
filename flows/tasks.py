"""The one retrying task decorator for tasks that do I/O (database, MLflow, files, network)."""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

from prefect import Task, task
from prefect.cache_policies import NO_CACHE

from flows.errors import retry_unless_user_error

P = ParamSpec("P")
R = TypeVar("R")

# Waits between attempts: a restarting database or tracking server gets time to come back.
DELAYS_S = (2, 10, 30)


def io_task(retries: int = 2, name: str | None = None) -> Callable[[Callable[P, R]], Task[P, R]]:
    """A Prefect task that retries transient failures but never a user's mistake.

    Args:
        retries: attempts after the first; the waits between them are 2 s, 10 s, 30 s.
        name: the task's name in the Prefect UI (default: the function's).

    Results are not cached: every run reads and writes the current state of the stores.
    """
    return task(
        name=name,
        retries=retries,
        retry_delay_seconds=list(DELAYS_S[:retries]),
        retry_condition_fn=retry_unless_user_error,
        cache_policy=NO_CACHE,
    )
