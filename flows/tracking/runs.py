"""MLflow runs: the tracking store, params, per-epoch and per-step metrics, nested runs, links."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import mlflow
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from flows.errors import SeqcastError
from flows.settings import Settings


def configure(settings: Settings) -> MlflowClient:
    """Point MLflow at the configured tracking store and experiment."""
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    try:
        mlflow.set_experiment(settings.experiment)
    except MlflowException as exc:
        raise SeqcastError(
            f"MLflow tracking store {settings.mlflow_tracking_uri!r} is unusable: {exc}"
        ) from exc
    return MlflowClient()


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config -> MLflow params (``model.hidden_size``: ``"64"``)."""
    out: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = str(value)
    return out


class EpochLogger:
    """Training callback: per-epoch metrics into the given MLflow run.

    With ``every_s`` the epochs are sent together at most that often (each store write costs
    a commit; the UI's curves then lag by up to ``every_s``): the first epoch at once, then
    whatever accumulated; :meth:`flush` sends the rest when training ends.
    """

    def __init__(self, client: MlflowClient, run_id: str, every_s: float = 0.0) -> None:
        self.client, self.run_id, self.every_s = client, run_id, every_s
        self.pending: list[Metric] = []
        self.sent_at: float | None = None

    def __call__(self, epoch: int, metrics: dict[str, float]) -> None:
        now = _now_ms()
        self.pending += [Metric(k, float(v), now, epoch) for k, v in metrics.items()]
        if self.sent_at is None or now / 1000 - self.sent_at >= self.every_s:
            self.flush()

    def flush(self) -> None:
        """Send what is pending (1000 metrics a call: MLflow's limit)."""
        for i in range(0, len(self.pending), 1000):
            self.client.log_batch(self.run_id, metrics=self.pending[i : i + 1000])
        self.pending = []
        self.sent_at = _now_ms() / 1000


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


def log_step_metric(client: MlflowClient, run_id: str, key: str, values: list[float]) -> None:
    """Log one value per step in batches of 1000 (MLflow's per-call limit)."""
    now = _now_ms()
    metrics = [Metric(key, float(v), now, i + 1) for i, v in enumerate(values)]
    for i in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[i : i + 1000])


@contextmanager
def child_run(parent_run_id: str, name: str, tags: dict[str, str]) -> Iterator[mlflow.ActiveRun]:
    """A nested run under ``parent_run_id`` (explicit, so it is thread-safe)."""
    with mlflow.start_run(
        run_name=name, parent_run_id=parent_run_id, nested=True, tags=tags
    ) as run:
        yield run


def run_link(run_id: str) -> str:
    """Markdown link to an MLflow run: the server's UI page, or ``runs:/<id>`` for a local store
    (open it with ``mlflow ui --backend-store-uri <store>``)."""
    uri = mlflow.get_tracking_uri()
    if uri.startswith(("http://", "https://")):
        try:
            experiment_id = MlflowClient().get_run(run_id).info.experiment_id
        except MlflowException:
            return f"`{run_id}`"
        return f"[{run_id[:8]}]({uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id})"
    return f"`runs:/{run_id}`"
