"""One text model: split the documents by id, train it in its own MLflow run, score it on the
held-out part, log its evaluation and register it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

import mlflow
import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.errors import SeqcastError
from flows.text.params import ClassifierParams, TaggerParams
from flows.tracking import plots
from flows.tracking.registry import TextModel, log_text_model
from flows.tracking.runs import EpochLogger, child_run, flatten, log_step_metric
from nlp.classifier import TextClassifier
from nlp.tagger import SequenceTagger
from nlp.training import TrainingDiverged

Kind = Literal["classifier", "tagger"]


@dataclass
class TextCandidate:
    """A trained and registered text model with its held-out scores."""

    kind: Kind
    run_id: str
    version: str
    score: float
    metrics: dict[str, float]
    model: TextModel = field(repr=False)


def split_by_doc_id(
    frame: pd.DataFrame, val_fraction: float, test_fraction: float
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(train, validation, test) by a hash of doc_id: a document stays in its part across runs,
    so a challenger and the champion are compared on the same held-out documents."""
    bucket = frame["doc_id"].map(
        lambda d: int(hashlib.sha256(str(d).encode()).hexdigest()[:8], 16) / 16**8
    )
    test = bucket < test_fraction
    val = ~test & (bucket < test_fraction + val_fraction)
    train = frame[~test & ~val]
    if "label" in frame.columns and frame["label"].notna().all():
        # A class missing from the training part cannot be learned: score the others.
        known = frame.loc[~test & ~val, "label"].unique()
        return (
            train,
            frame[val & frame["label"].isin(known)],
            frame[test & frame["label"].isin(known)],
        )
    return train, frame[val], frame[test]


def held_out_score(kind: Kind, model: TextModel, test: pd.DataFrame) -> dict[str, Any]:
    """Accuracy (classifier) or entity F1 / token accuracy (tagger) on the test part."""
    if kind == "classifier":
        assert isinstance(model, TextClassifier)
        out = model.evaluate(test["text"].tolist(), test["label"].tolist())
        return {**out, "score": out["accuracy"]}
    assert isinstance(model, SequenceTagger)
    return model.evaluate([list(t) for t in test["tokens"]], [list(t) for t in test["tags"]])


def _fit(
    kind: Kind, params: ClassifierParams | TaggerParams, train: pd.DataFrame, val: pd.DataFrame,
    logger: EpochLogger,
) -> tuple[TextModel, Any]:  # fmt: skip
    vectors = params.word_vectors()
    if isinstance(params, ClassifierParams):
        clf = TextClassifier(params.spec())
        result = clf.fit(
            train["text"].tolist(), train["label"].tolist(), val["text"].tolist(),
            val["label"].tolist(), [logger], vectors=vectors,
        )  # fmt: skip
        return clf, result
    tagger = SequenceTagger(params.spec())
    schemes = train["scheme"].dropna().unique().tolist()
    result = tagger.fit(
        [list(t) for t in train["tokens"]], [list(t) for t in train["tags"]],
        [list(t) for t in val["tokens"]], [list(t) for t in val["tags"]],
        scheme=schemes[0] if len(schemes) == 1 else None, callbacks=[logger], vectors=vectors,
    )  # fmt: skip
    return tagger, result


def _log_evaluation(kind: Kind, model: TextModel, scores: dict[str, Any]) -> None:
    """The confusion matrix (classifier) or per-entity-type table (tagger) as artifacts."""
    if kind == "classifier":
        assert isinstance(model, TextClassifier)
        confusion = pd.DataFrame(scores["confusion"], index=model.labels, columns=model.labels)
        confusion.index.name = "true \\ predicted"
        mlflow.log_text(confusion.to_csv(), "evaluation/confusion_matrix.csv")
        fig = plots.plt.figure(figsize=(4, 3.5))
        ax = fig.add_subplot()
        ax.imshow(confusion.to_numpy(), cmap="Blues")
        ax.set_xticks(range(len(model.labels)), model.labels)
        ax.set_yticks(range(len(model.labels)), model.labels)
        for (i, j), n in np.ndenumerate(confusion.to_numpy()):
            ax.text(j, i, str(n), ha="center", va="center")
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        mlflow.log_figure(fig, "evaluation/confusion_matrix.png")
        plots.close(fig)
    elif "per_type" in scores:
        table = pd.DataFrame(scores["per_type"]).T
        table.index.name = "entity_type"
        mlflow.log_text(table.to_csv(), "evaluation/per_entity_type.csv")


@task(cache_policy=NO_CACHE)
def train_text_model(
    kind: Kind,
    params: ClassifierParams | TaggerParams,
    frame: pd.DataFrame,
    parent_run_id: str,
    tags: dict[str, str],
) -> TextCandidate | None:
    """Train one model in its own MLflow child run; register it unless training diverged."""
    client = MlflowClient()
    train, val, test = split_by_doc_id(frame, params.val_fraction, params.test_fraction)
    if min(len(train), len(val), len(test)) == 0:
        raise SeqcastError(
            f"task {params.task!r}: {len(frame)} documents split into {len(train)} train, "
            f"{len(val)} validation, {len(test)} test; ingest more or raise the fractions"
        )
    with child_run(parent_run_id, f"{params.task}-{kind}", {**tags, "kind": kind}) as run:
        run_id = run.info.run_id
        spec = params.spec()
        mlflow.log_params(flatten(spec.to_dict()))
        mlflow.log_params(
            {"task": params.task, "registered_model": params.registered_model, "kind": kind,
             "data.train": len(train), "data.validation": len(val), "data.test": len(test),
             "recipe": params.recipe or "none", "vectors": params.vectors}
        )  # fmt: skip
        try:
            model, result = _fit(kind, params, train, val, EpochLogger(client, run_id))
        except TrainingDiverged as exc:
            get_run_logger().error("%s %s diverged: %s", params.task, kind, exc)
            mlflow.set_tag("failure", str(exc))
        else:
            return _finish_text_model(kind, params, model, result, test, run_id, client)
    client.set_terminated(run_id, "FAILED")
    return None


def _finish_text_model(
    kind: Kind,
    params: ClassifierParams | TaggerParams,
    model: TextModel,
    result: Any,
    test: pd.DataFrame,
    run_id: str,
    client: MlflowClient,
) -> TextCandidate:
    """Score on the held-out part, log metrics and figures, and register, in the active run."""
    log_step_metric(client, run_id, "grad_norm_step", result.grad_norms)
    scores = held_out_score(kind, model, test)
    metrics = {
        f"test_{k}": float(v)
        for k, v in scores.items()
        if isinstance(v, int | float) and k not in ("n", "n_sentences", "n_tokens")
    }
    metrics.update(best_epoch=float(result.best_epoch), train_seconds=result.seconds)
    mlflow.log_metrics(metrics)
    _log_evaluation(kind, model, scores)
    for name, fig in (
        ("loss_curve", plots.loss_curves(result.history, f"{params.task} {kind}")),
        ("grad_norm", plots.grad_norms(result.grad_norms, params.clip_norm, kind)),
    ):
        mlflow.log_figure(fig, f"plots/{name}.png")
        plots.close(fig)
    version = log_text_model(model, params.registered_model)
    client.set_model_version_tag(
        params.registered_model, version.version, "test_score", f"{scores['score']:.4f}"
    )
    get_run_logger().info(
        "%s %s: version %s, held-out score %.4f, %d epochs in %.1fs",
        params.task, kind, version.version, scores["score"], len(result.history),
        result.seconds,
    )  # fmt: skip
    return TextCandidate(kind, run_id, str(version.version), scores["score"], metrics, model)
