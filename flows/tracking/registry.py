"""The MLflow model registry: log and register forecasters and text models, find a version by
alias, and load a registered version back (seqcast's ``weights_only``-safe artifact).

Both kinds are logged as MLflow pyfunc models "from code" (``pyfunc_forecaster.py``,
``pyfunc_text.py``): MLflow runs that file to load the model, so no pickle is written, and
the file loads seqcast's artifact with ``torch.load(weights_only=True)``. ``mlflow models
serve`` and ``mlflow.pyfunc.load_model`` then answer in the series' units (or labels/tags).
"""

from __future__ import annotations

import shutil
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, DataType, Schema, TensorSpec
from mlflow.types.schema import Array

import forecasting
import nlp
from flows.errors import SeqcastError
from forecasting.ensemble import EnsembleForecaster, Forecaster, load_forecaster_file
from forecasting.forecaster import GlobalForecaster
from nlp.classifier import TextClassifier
from nlp.tagger import SequenceTagger

ARTIFACT_FILE = "seqcast_forecaster.pt"
ENSEMBLE_FILE = "seqcast_ensemble.pt"
# The models-from-code files, run by MLflow (not imported here: each calls set_model).
_CODE_DIR = Path(__file__).parent
# Pinned to what logged the model, so a served model runs on the versions it was tested with.
_REQUIREMENTS = ("torch", "numpy", "pandas")


def _pip_requirements() -> list[str]:
    # Given explicitly: inferring requirements re-imports the model in a subprocess.
    return [f"{p}=={metadata.version(p).split('+')[0]}" for p in _REQUIREMENTS]


def _code_path(package: Any, tmp: Path) -> str:
    """A copy of ``package``'s source (no bytecode caches) for the model's ``code`` folder."""
    src = Path(package.__file__).parent
    dst = tmp / src.name
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return str(dst)


def _log_pyfunc(
    code: Path, package: Any, artifact: Path, key: str, registered: str, **kwargs: Any
) -> ModelVersion:
    # python_model as a file path is MLflow's "models from code": no cloudpickled object.
    with tempfile.TemporaryDirectory() as tmp:
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(code),
            artifacts={key: str(artifact)},
            code_paths=[_code_path(package, Path(tmp))],
            pip_requirements=_pip_requirements(),
            registered_model_name=registered,
            **kwargs,
        )
    return MlflowClient().get_model_version(registered, str(info.registered_model_version))


def forecaster_signature(forecaster: GlobalForecaster) -> ModelSignature:
    """Request columns (plus one per exogenous covariate) and response columns."""
    exogenous = [ColSpec("double", name) for name in forecaster.spec.exogenous]
    # Past-only covariates are empty on the future rows (never read there).
    exogenous += [
        ColSpec("double", name, required=False) for name in forecaster.spec.past_covariates
    ]
    return ModelSignature(
        inputs=Schema(
            [
                ColSpec("string", "series_id"),
                ColSpec("string", "ts"),
                ColSpec("double", "value", required=not exogenous),
                *exogenous,
            ]
        ),
        outputs=Schema(
            [
                ColSpec("string", "series_id"),
                ColSpec("string", "ts"),
                ColSpec("long", "step"),
                ColSpec("double", "yhat"),
                ColSpec("double", "yhat_lower"),
                ColSpec("double", "yhat_upper"),
            ]
        ),
    )


def _last_window(forecaster: GlobalForecaster, frame: pd.DataFrame | None) -> pd.DataFrame | None:
    """``series_id, ts, value`` of the last full window of a series the model knows: from its
    training panel when it was fitted in this process, else from ``frame``."""
    w = forecaster.window.window
    panel = forecaster._panel
    if panel is not None:
        for i, sid in enumerate(panel.series_ids):
            values = panel.series_values(i)[-w:].astype(float)
            if len(values) == w and pd.notna(values).all():
                n = int(panel.lengths[i])
                stamps = [panel.timestamp(i, n - w + k) for k in range(w)]
                return pd.DataFrame({"series_id": sid, "ts": stamps, "value": values})
        return None
    if frame is None:
        return None
    for key, rows in frame.groupby("series_id", sort=True):
        last, name = rows.sort_values("ts").tail(w), str(key)
        if name in forecaster.freqs and len(last) == w and last["value"].notna().all():
            ts = pd.to_datetime(last["ts"], utc=True)
            return pd.DataFrame({"series_id": name, "ts": list(ts), "value": last["value"]})
    return None


def forecaster_example(
    forecaster: GlobalForecaster,
    frame: pd.DataFrame | None = None,
    exogenous: pd.DataFrame | None = None,
) -> pd.DataFrame | None:
    """A request for the model (the last full window of a training series, with its covariates
    and, for a model with covariates, the horizon's rows), or None when none can be built:
    no full window, or a known-future covariate not stored over the horizon."""
    history = _last_window(forecaster, frame)
    if history is None:
        return None
    names = list(forecaster.spec.covariates.exogenous)
    if names:
        exog = exogenous if exogenous is not None else forecaster._exogenous
        if exog is None:
            return None
        sid, last = str(history["series_id"].iloc[0]), pd.Timestamp(history["ts"].iloc[-1])
        horizon = forecaster.spec.model.horizon
        future = pd.date_range(last, periods=horizon + 1, freq=forecaster.freqs[sid])[1:]
        rows = pd.concat(
            [history, pd.DataFrame({"series_id": sid, "ts": future, "value": np.nan})],
            ignore_index=True,
        )
        known = exog.assign(ts=pd.to_datetime(exog["ts"], utc=True))[["series_id", "ts", *names]]
        history = rows.merge(known, on=["series_id", "ts"], how="left")
        if history[list(forecaster.spec.exogenous)].isna().any().any():
            return None  # a known-future value missing over window or horizon
    return history.assign(ts=[t.isoformat() for t in history["ts"]])


def log_forecaster(
    forecaster: GlobalForecaster,
    registered_model: str,
    frame: pd.DataFrame | None = None,
    exogenous: pd.DataFrame | None = None,
) -> ModelVersion:
    """Log the model to the active run as a pyfunc (raw history in, forecasts out, see
    ``pyfunc_forecaster.py``) with seqcast's safe artifact; register a new version. The
    input example comes from the training panel, else from ``frame`` (and ``exogenous``)."""
    with tempfile.TemporaryDirectory() as tmp:
        artifact = forecaster.save(Path(tmp) / ARTIFACT_FILE)
        return _log_pyfunc(
            _CODE_DIR / "pyfunc_forecaster.py",
            forecasting,
            artifact,
            "forecaster",
            registered_model,
            signature=forecaster_signature(forecaster),
            input_example=forecaster_example(forecaster, frame, exogenous),
        )


def get_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version behind ``name@alias``, or None when the model or alias does not exist."""
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def _download(name: str, version: str) -> Path:
    try:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}"))
    except MlflowException as exc:
        raise SeqcastError(f"cannot download model {name} version {version}: {exc}") from exc


def load_forecaster(name: str, version: str) -> GlobalForecaster:
    """Download a registered version and load seqcast's artifact with ``weights_only=True``."""
    local = _download(name, version)
    found = list(local.rglob(ARTIFACT_FILE))
    if not found and list(local.rglob(ENSEMBLE_FILE)):
        raise SeqcastError(
            f"model {name} version {version} is an ensemble, not a single forecaster; "
            "load it with load_model"
        )
    if not found:
        raise SeqcastError(f"model {name} version {version} has no {ARTIFACT_FILE}; retrain it")
    return GlobalForecaster.load(found[0])


def log_ensemble(ensemble: EnsembleForecaster, registered_model: str) -> ModelVersion:
    """Log the ensemble to the active run as ONE pyfunc model and register a new version.

    The same models-from-code file as :func:`log_forecaster` (it loads either artifact), the
    same request and response; the artifact holds every member (seqcast's safe format)."""
    first = ensemble.members[0]
    with tempfile.TemporaryDirectory() as tmp:
        artifact = ensemble.save(Path(tmp) / ENSEMBLE_FILE)
        return _log_pyfunc(
            _CODE_DIR / "pyfunc_forecaster.py",
            forecasting,
            artifact,
            "forecaster",
            registered_model,
            signature=forecaster_signature(first),
            input_example=forecaster_example(first),
        )


def load_model(name: str, version: str) -> Forecaster:
    """Download a registered version, a single forecaster or an ensemble, and load it with
    ``weights_only=True``: what forecasting and promotion load a champion with."""
    local = _download(name, version)
    found = [*local.rglob(ENSEMBLE_FILE), *local.rglob(ARTIFACT_FILE)]
    if not found:
        raise SeqcastError(
            f"model {name} version {version} has neither {ARTIFACT_FILE} nor {ENSEMBLE_FILE}; "
            "retrain it"
        )
    return load_forecaster_file(found[0])


TextModel = TextClassifier | SequenceTagger
ARTIFACT_FILES: dict[type, str] = {
    TextClassifier: "seqcast_text_classifier.pt",
    SequenceTagger: "seqcast_sequence_tagger.pt",
}
_KINDS: dict[type, str] = {TextClassifier: "classifier", SequenceTagger: "tagger"}


def text_signature(model: TextModel) -> ModelSignature:
    """A ``text`` column in; label and score, or tokens and tags, out."""
    outputs: list[ColSpec | TensorSpec]
    if isinstance(model, TextClassifier):
        outputs = [ColSpec("string", "label"), ColSpec("double", "score")]
    else:
        outputs = [ColSpec(Array(DataType.string), n) for n in ("tokens", "tags")]
    return ModelSignature(inputs=Schema([ColSpec("string", "text")]), outputs=Schema(outputs))


def _vocabulary_text(model: TextModel) -> str:
    """A request example made of the model's own most frequent words."""
    vocab = model.vocab if isinstance(model, TextClassifier) else model.words
    words = [] if vocab is None else [w for w in vocab.itos[2:] if w.isalpha()][:12]
    return " ".join(words) or "text"


def log_text_model(
    model: TextModel, registered_model: str, example: list[str] | None = None
) -> ModelVersion:
    """Log the model to the active run as a pyfunc (text in, labels or tags out, see
    ``pyfunc_text.py``) with seqcast's safe artifact; register a new version."""
    assert model.model is not None, "train the model before logging it"
    with tempfile.TemporaryDirectory() as tmp:
        artifact = model.save(Path(tmp) / ARTIFACT_FILES[type(model)])
        return _log_pyfunc(
            _CODE_DIR / "pyfunc_text.py",
            nlp,
            artifact,
            "text_model",
            registered_model,
            model_config={"kind": _KINDS[type(model)]},
            signature=text_signature(model),
            input_example=pd.DataFrame({"text": example or [_vocabulary_text(model)]}),
        )


def load_text_model(name: str, version: str) -> TextModel:
    """Download a registered version and load seqcast's artifact with ``weights_only=True``
    (a file holding anything but tensors, numbers, strings and containers is refused)."""
    local = _download(name, version)
    for cls, filename in ARTIFACT_FILES.items():
        found = list(local.rglob(filename))
        if found:
            try:
                return cls.load(found[0])  # type: ignore[attr-defined]
            except ValueError as exc:  # nlp.artifact.ArtifactError
                raise SeqcastError(
                    f"model {name} version {version}: {exc}; it was not written by seqcast's "
                    "trainer, so it is not loaded; retrain the model"
                ) from exc
    raise SeqcastError(f"model {name} version {version} is no seqcast text model; retrain it")
