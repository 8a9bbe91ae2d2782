"""MLflow for text models: log and register a trained model, load a registered version."""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow
import torch
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from flows.errors import SeqcastError
from nlp.classifier import TextClassifier
from nlp.tagger import SequenceTagger

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
