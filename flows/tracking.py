"""MLflow wiring: runs, metrics, model logging, registry versions and the champion alias."""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import torch
from mlflow.entities import Metric
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from flows.errors import SeqcastError
from flows.settings import Settings
from forecasting.export import PackedForecaster
from forecasting.forecaster import GlobalForecaster

ARTIFACT_FILE = "seqcast_forecaster.pt"
# torch.export keeps global tracing state: groups trained in parallel threads (Dask fan-out)
# export one at a time.
_EXPORT_LOCK = threading.Lock()


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
    """Training callback: per-epoch metrics into the given MLflow run."""

    def __init__(self, client: MlflowClient, run_id: str) -> None:
        self.client, self.run_id = client, run_id

    def __call__(self, epoch: int, metrics: dict[str, float]) -> None:
        self.client.log_batch(
            self.run_id,
            metrics=[Metric(k, float(v), _now_ms(), epoch) for k, v in metrics.items()],
        )


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


def log_forecaster(forecaster: GlobalForecaster, registered_model: str) -> ModelVersion:
    """Log the model to the active run (MLflow ``pt2`` flavor plus seqcast's safe artifact) and
    register it as a new version of ``registered_model``."""
    # One input tensor: the scaled window, then any covariates and the series index.
    model = PackedForecaster(forecaster.model.to("cpu").eval()).eval()
    example = np.zeros((2, model.width), dtype=np.float32)
    torch_req = f"torch=={torch.__version__.split('+')[0]}"
    with tempfile.TemporaryDirectory() as tmp:
        artifact = forecaster.save(Path(tmp) / ARTIFACT_FILE)
        with _EXPORT_LOCK:
            info = _log_model(model, example, artifact, torch_req, registered_model)
    client = MlflowClient()
    version = str(info.registered_model_version)
    return client.get_model_version(registered_model, version)


def _log_model(
    model: torch.nn.Module, example: np.ndarray, artifact: Path, torch_req: str, registered: str
) -> Any:
    return mlflow.pytorch.log_model(
        model,
        name="model",
        input_example=example,
        serialization_format="pt2",
        extra_files=[str(artifact)],
        # Given explicitly: inferring requirements re-imports the model in a subprocess.
        pip_requirements=[torch_req],
        registered_model_name=registered,
    )


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


def get_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version behind ``name@alias``, or None when the model or alias does not exist."""
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def load_forecaster(name: str, version: str) -> GlobalForecaster:
    """Download a registered version and load seqcast's artifact with ``weights_only=True``."""
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}"))
    except MlflowException as exc:
        raise SeqcastError(f"cannot download model {name} version {version}: {exc}") from exc
    found = list(local.rglob(ARTIFACT_FILE))
    if not found:
        raise SeqcastError(f"model {name} version {version} has no {ARTIFACT_FILE}; retrain it")
    return GlobalForecaster.load(found[0])
