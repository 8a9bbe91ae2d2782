"""The ``score-text`` flow: each text champion scores the documents it has not scored yet;
its predictions are written in one transaction."""

from __future__ import annotations

from typing import Any

import pandas as pd
from mlflow.tracking import MlflowClient
from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from db import make_engine
from db.text_predictions import TextPrediction, documents_to_score, write_text_predictions
from flows.checks import check_database, check_tracking
from flows.errors import SeqcastError
from flows.hooks import ALERT
from flows.settings import Settings
from flows.tasks import io_task
from flows.text.params import ScoreTextParams
from flows.text.results import ScoringSkipped, ScoringSummary, TextScoring
from flows.text.sentiment import load_sentiment_covariate
from flows.tracking.registry import TextModel, get_alias, load_text_model
from nlp.classifier import TextClassifier
from nlp.tagger import SequenceTagger
from nlp.vocab import tokenize


@io_task()
def resolve_text_model(name: str, alias: str) -> tuple[str, str] | None:
    """(version, MLflow run id) behind ``name@alias``, or None."""
    version = get_alias(MlflowClient(), name, alias)
    return None if version is None else (str(version.version), str(version.run_id))


@io_task()
def unscored_documents(
    name: str, version: str, limit: int | None, source_like: str | None
) -> pd.DataFrame:
    """Documents this model version has not scored yet."""
    engine = make_engine(Settings.from_env().database_url)
    try:
        return documents_to_score(engine, name, version, limit, source_like)
    finally:
        engine.dispose()


def predict_documents(model: TextModel, docs: pd.DataFrame) -> list[TextPrediction]:
    """Labels with their probability (and the positive one's), or tags per token."""
    if isinstance(model, TextClassifier):
        probs = model.predict_proba(docs["text"].tolist())
        positive = model.labels.index(model.positive_label) if model.positive_label else None
        return [
            TextPrediction(
                doc_id=str(doc_id),
                label=model.labels[int(p.argmax())],
                score=float(p.max()),
                positive_score=None if positive is None else float(p[positive]),
            )
            for doc_id, p in zip(docs["doc_id"], probs, strict=True)
        ]
    assert isinstance(model, SequenceTagger)
    # Documents loaded from tagged files keep their tokens; others are tokenized here.
    sentences = [
        list(tokens) if isinstance(tokens, list) else tokenize(str(text), lower=False)
        for tokens, text in zip(docs["tokens"], docs["text"], strict=True)
    ]
    tagged = model.predict(sentences)
    return [
        TextPrediction(doc_id=str(doc_id), tags=[[w, t] for w, t in zip(s, tags, strict=True)])
        for doc_id, s, tags in zip(docs["doc_id"], sentences, tagged, strict=True)
    ]


@io_task()
def write_predictions(
    name: str, version: str, run_id: str, predictions: list[TextPrediction]
) -> int:
    """All of one model's predictions in one transaction."""
    engine = make_engine(Settings.from_env().database_url)
    try:
        return write_text_predictions(engine, name, version, run_id, predictions)
    finally:
        engine.dispose()


@flow(name="score-text", log_prints=True, on_failure=ALERT, on_crashed=ALERT)
def score_text(params: ScoreTextParams | None = None) -> ScoringSummary:
    """Score new documents with every configured text champion."""
    params = params or ScoreTextParams()
    check_database()
    check_tracking()
    kinds: list[tuple[str, type[TextClassifier] | type[SequenceTagger]]]
    kinds = [(t, TextClassifier) for t in params.classifier_tasks]
    kinds += [(t, SequenceTagger) for t in params.tagger_tasks]
    outcomes = tuple(score_task(t, expected, params) for t, expected in kinds)
    loaded = sentiment_covariates(outcomes) if params.sentiment_covariates else ()
    summary = ScoringSummary(outcomes, loaded)
    create_table_artifact(
        key="score-text",
        table=[{k: str(v) for k, v in r.items()} for r in summary.rows()],
        description="Text predictions written",
    )
    if loaded:
        create_table_artifact(
            key="score-text-covariates",
            table=[{k: str(v) for k, v in r.items()} for r in summary.covariate_rows()],
            description="Daily sentiment per linked series loaded as past-only covariates",
        )
    return summary


def sentiment_covariates(
    outcomes: tuple[TextScoring | ScoringSkipped, ...],
) -> tuple[dict[str, Any], ...]:
    """Each scored classifier's daily sentiment per linked series into the covariates table
    (past_only, named after its task; see flows.text.sentiment)."""
    logger = get_run_logger()
    loaded = []
    for o in outcomes:
        if not isinstance(o, TextScoring) or o.kind != "classifier":
            continue
        result = load_sentiment_covariate(f"seqcast-{o.task}", o.task)
        if result is None:
            logger.info("%s: no scored document is linked to a series; no covariate", o.model)
            continue
        logger.info(
            "covariate %s (past_only) from %s: %d received, %d accepted, %d rejected, "
            "%d inserted, %d updated%s",
            o.task, o.model, result["received"], result["accepted"], result["rejected"],
            result["inserted"], result["updated"],
            " (already loaded)" if result["already_loaded"] else "",
        )  # fmt: skip
        loaded.append(result)
    return tuple(loaded)


def score_task(
    task_name: str, expected: type[TextClassifier] | type[SequenceTagger], params: ScoreTextParams
) -> TextScoring | ScoringSkipped:
    """Score the documents ``seqcast-<task>@alias`` has not scored yet; write its predictions."""
    logger = get_run_logger()
    name = f"seqcast-{task_name}"
    resolved = resolve_text_model(name, params.alias)
    if resolved is None:
        msg = f"no {name}@{params.alias}; run train-text first"
        logger.warning(msg)
        return ScoringSkipped(task_name, msg)
    version, run_id = resolved
    model = load_text_model(name, version)
    if not isinstance(model, expected):
        raise SeqcastError(
            f"{name} v{version} is a {type(model).__name__}, not a {expected.__name__}"
        )
    docs = unscored_documents(name, version, params.limit, params.source_like)
    predictions = predict_documents(model, docs) if len(docs) else []
    written = write_predictions(name, version, run_id, predictions) if predictions else 0
    logger.info("%s v%s: %d documents scored, %d rows written", name, version, len(docs), written)
    kind = "classifier" if expected is TextClassifier else "tagger"
    return TextScoring(task_name, f"{name} v{version}", len(docs), written, kind)
