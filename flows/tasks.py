"""The one retrying task decorator for tasks that do I/O (database, MLflow, files, network),
and the one way a flow runs another as its subflow."""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

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


def subflow(run: Callable[[], R]) -> R:
    """Call ``run`` (which calls a flow) as a subflow of the current flow run, without a
    heartbeat thread of its own.

    Prefect gives every flow run, nested ones included, a heartbeat thread that sleeps in
    one-second steps and is joined when the run ends, and starting a subflow waits on it too:
    on the ``pipeline`` flow's three subflows that cost 3-4 s a run (bench/pipeline_overhead.py).
    The parent run's heartbeats already tell the server that the process is alive, and a
    crashed process stops them; subflows run in that same process. Outside a flow run (a
    deployment's own run, a test) ``run`` is called as it is.
    """
    if FlowRunContext.get() is None:
        return run()
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        return run()
