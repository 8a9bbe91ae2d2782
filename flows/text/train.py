"""The ``train-text`` flow: train the text classifier and tagger from labelled documents in the
database, log them to MLflow, register, and alias a challenger ``champion`` only when it beats
the current champion on the same held-out documents."""

from __future__ import annotations

import dataclasses

import mlflow
import pandas as pd
from prefect import flow
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from db import make_engine
from db.documents import read_labelled_documents
from flows.checks import check_database, check_tracking
from flows.errors import SeqcastError
from flows.hooks import ALERT
from flows.reports.tables import markdown_table
from flows.settings import Settings
from flows.tasks import io_task
from flows.text.candidates import Kind, train_text_model
from flows.text.params import ClassifierParams, TaggerParams, TrainTextParams
from flows.text.promote import promote_text
from flows.text.results import TextTraining, TextTrainingSummary

MIN_DOCUMENTS = 20
REPORT_COLUMNS = ("task", "model", "version", "documents", "held-out score", "champion")


@io_task()
def read_task_documents(task_name: str, kind: Kind) -> pd.DataFrame:
    """Labelled (classifier) or tagged (tagger) documents of one task."""
    engine = make_engine(Settings.from_env().database_url)
    try:
        frame = read_labelled_documents(engine, task_name)
    finally:
        engine.dispose()
    if kind == "classifier":
        frame = frame[frame["label"].notna()]
    else:
        frame = frame[frame["tags"].notna() & frame["tokens"].notna()]
    if len(frame) < MIN_DOCUMENTS:
        raise SeqcastError(
            f"task {task_name!r} has {len(frame)} "
            f"{'labelled' if kind == 'classifier' else 'tagged'} documents, need at least "
            f"{MIN_DOCUMENTS}; load some with `seqcast ingest-text`"
        )
    return frame.reset_index(drop=True)


@flow(name="train-text", log_prints=True, on_failure=ALERT, on_crashed=ALERT)
def train_text(params: TrainTextParams | None = None) -> TextTrainingSummary:
    """For each configured model: read its task's documents, train, register, promote."""
    params = params or TrainTextParams()
    check_database()
    check_tracking()
    tags = {"flow_run_id": str(flow_run.id or "local"), "flow": "train-text"}
    jobs: list[tuple[Kind, ClassifierParams | TaggerParams | None]] = [
        ("classifier", params.classifier),
        ("tagger", params.tagger),
    ]
    trained = []
    with mlflow.start_run(run_name="train-text", tags=tags) as parent:
        for kind, p in jobs:
            if p is not None:
                trained.append(train_and_promote(kind, p, parent.info.run_id, tags))
    summary = TextTrainingSummary(tuple(trained))
    create_markdown_artifact(key="train-text", markdown=text_training_report(summary))
    return summary


def train_and_promote(
    kind: Kind, params: ClassifierParams | TaggerParams, parent_run_id: str, tags: dict[str, str]
) -> TextTraining:
    """One model: read its task's documents, train and register it, promote it or not."""
    frame = read_task_documents(params.task, kind)
    candidate = train_text_model(kind, params, frame, parent_run_id, tags)
    if candidate is None:
        raise SeqcastError(f"{params.task} {kind} diverged; see MLflow run {parent_run_id}")
    decision = promote_text(params, candidate, frame)
    mlflow.log_dict(dataclasses.asdict(decision), f"promotion/{params.task}.json")
    return TextTraining(
        task=params.task,
        kind=kind,
        registered_model=params.registered_model,
        version=candidate.version,
        run_id=candidate.run_id,
        documents=len(frame),
        metrics=candidate.metrics,
        decision=decision,
    )


def text_training_report(summary: TextTrainingSummary) -> str:
    """Markdown table: each model's held-out scores and the promotion decision."""
    rows = [
        {**r, "model": r["kind"], "champion": f"{r['champion']}: {r['reason']}"}
        for r in summary.rows()
    ]
    return markdown_table(rows, REPORT_COLUMNS)
