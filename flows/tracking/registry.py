"""The MLflow model registry: log and register forecasters and text models, find a version by
alias, and load a registered version back (seqcast's ``weights_only``-safe artifact)."""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import torch
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from flows.errors import SeqcastError
from forecasting.export import PackedForecaster
from forecasting.forecaster import GlobalForecaster
from nlp.classifier import TextClassifier
from nlp.tagger import SequenceTagger

ARTIFACT_FILE = "seqcast_forecaster.pt"
# torch.export keeps global tracing state: groups trained in parallel threads (Dask fan-out)
# export one at a time.
_EXPORT_LOCK = threading.Lock()


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


TextModel = TextClassifier | SequenceTagger
ARTIFACT_FILES: dict[type, str] = {
    TextClassifier: "seqcast_text_classifier.pt",
    SequenceTagger: "seqcast_sequence_tagger.pt",
}


def log_text_model(model: TextModel, registered_model: str) -> ModelVersion:
    """Log the model to the active run (MLflow ``pytorch`` flavor plus seqcast's
    ``weights_only``-safe artifact with vocabularies and labels) and register a new version."""
    assert model.model is not None, "train the model before logging it"
    torch_req = f"torch=={torch.__version__.split('+')[0]}"
    with tempfile.TemporaryDirectory() as tmp:
        artifact = model.save(Path(tmp) / ARTIFACT_FILES[type(model)])
        info = mlflow.pytorch.log_model(
            model.model.to("cpu").eval(),
            name="model",
            serialization_format="pickle",
            extra_files=[str(artifact)],
            # Given explicitly: inferring requirements re-imports the model in a subprocess.
            pip_requirements=[torch_req],
            registered_model_name=registered_model,
        )
    return MlflowClient().get_model_version(registered_model, str(info.registered_model_version))


def load_text_model(name: str, version: str) -> TextModel:
    """Download a registered version and load seqcast's artifact with ``weights_only=True``."""
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}"))
    except MlflowException as exc:
        raise SeqcastError(f"cannot download model {name} version {version}: {exc}") from exc
    for cls, filename in ARTIFACT_FILES.items():
        found = list(local.rglob(filename))
        if found:
            return cls.load(found[0])  # type: ignore[attr-defined]
    raise SeqcastError(f"model {name} version {version} is no seqcast text model; retrain it")
