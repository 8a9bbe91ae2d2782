"""Fan-out of the per-group training over a Dask cluster through Prefect's DaskTaskRunner.

``dask_address="local"`` starts a cluster in this process (two single-threaded workers);
any other value is the address of an existing scheduler (``tcp://scheduler:8786``), whose
workers run the same image/environment as the flow (the project installed, and the same
``SEQCAST_DATABASE_URL``, ``MLFLOW_TRACKING_URI`` and ``PREFECT_API_URL``).
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.series.group import train_group
from flows.series.params import ModelGroup
from flows.series.results import GroupFailure, GroupTraining, TrainingSummary, group_failed
from flows.tasks import io_task, subflow

# Each group is one task on a Dask worker; its own tasks (read, train, promote) run there too.
train_group_task = io_task(retries=1, name="train-group")(train_group)


def task_runner(address: str) -> Any:
    """A DaskTaskRunner for ``address`` ("local": an in-process cluster of two workers)."""
    from prefect_dask import DaskTaskRunner

    if address == "local":
        # Threads share this process's Prefect and MLflow settings (a test harness included).
        return DaskTaskRunner(
            cluster_kwargs={"n_workers": 2, "threads_per_worker": 1, "processes": False}
        )
    return DaskTaskRunner(address=address)


def train_groups_on_dask(
    groups: list[ModelGroup], run_tags: dict[str, str], address: str
) -> TrainingSummary:
    """Train every group as one Dask task; outcomes in the groups' order.

    A group whose task failed (after its retry, or at once for a user's error) is a
    :class:`GroupFailure`; the others' results are kept.
    """

    @flow(name="train-groups-dask", task_runner=task_runner(address))
    def fan_out() -> TrainingSummary:
        futures = [train_group_task.submit(g, run_tags) for g in groups]
        outcomes: list[GroupTraining | GroupFailure] = []
        for g, future in zip(groups, futures, strict=True):
            try:
                outcomes.append(future.result())
            except Exception as exc:
                outcomes.append(group_failed(g.name, exc))
        return TrainingSummary(tuple(outcomes))

    return subflow(fan_out)
