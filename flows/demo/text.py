"""The text part of ``seqcast demo``: real reviews and a real treebank, from the database to
predictions, through the same flows the deployments run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
from rich.console import Console
from sqlalchemy import Engine, text

from flows.reports.tables import rich_table
from flows.text.ingest import ingest_text
from flows.text.params import (
    ClassifierParams,
    IngestTextParams,
    ScoreTextParams,
    TaggerParams,
    TrainTextParams,
)
from flows.text.results import ScoringSummary, TextTrainingSummary
from flows.text.score import score_text
from flows.text.train import train_text

# Small budgets (at most about two minutes of training each): the demo shows the pipeline;
# bench/text.py measures accuracy.
DEMO_TRAINING = TrainTextParams(
    classifier=ClassifierParams(
        task="sentiment", max_epochs=3, batch_size=64, embedding_dim=64, hidden_size=64,
        max_tokens=100, max_minutes=2.0,
    ),
    tagger=TaggerParams(task="pos", max_epochs=6, use_crf=False, max_minutes=2.0),
)  # fmt: skip

EXAMPLE_QUERIES = {
    "Latest sentiment of a few reviews": (
        "SELECT doc_id, label, round(score, 3) AS score, model_name, model_version,\n"
        "       substr(text, 1, 60) AS text\n"
        "FROM text_predictions_latest WHERE model_name = 'seqcast-sentiment'\n"
        "ORDER BY doc_id LIMIT 5"
    ),
    "Predicted against labelled sentiment": (
        "SELECT l.label AS labelled, p.label AS predicted, COUNT(*) AS n\n"
        "FROM text_predictions_latest p\n"
        "JOIN document_labels l ON l.doc_id = p.doc_id AND l.task = 'sentiment'\n"
        "WHERE p.model_name = 'seqcast-sentiment' GROUP BY l.label, p.label ORDER BY 1, 2"
    ),
}


@dataclass(frozen=True)
class TextDemoSummary:
    """What the text part of the demo ran: ingest batches, training, scoring."""

    ingest: list[dict[str, Any]]
    train: TextTrainingSummary
    score: ScoringSummary


MODEL_COLUMNS = ("task", "model", "documents", "held-out accuracy", "macro F1", "champion")


def run_text_demo(console: Console, engine: Engine) -> TextDemoSummary:
    """Ingest both bundled corpora, train both models, score, and show the results."""
    ingested = ingest_text(IngestTextParams(bundled=["rotten_tomatoes", "turkish_treebank"]))
    trained = train_text(DEMO_TRAINING)
    scored = score_text(
        ScoreTextParams(classifier_tasks=["sentiment"], tagger_tasks=[], source_like="%rotten%")
    ) + score_text(
        ScoreTextParams(classifier_tasks=[], tagger_tasks=["pos"], source_like="%web.conllu")
    )
    console.rule("seqcast demo: text models")
    console.print(
        rich_table(
            "Text ingest batches",
            pd.DataFrame(ingested)[["source", "task", "received", "accepted", "rejected"]],
        )
    )
    console.print(rich_table("Text models on held-out documents", trained.rows(), MODEL_COLUMNS))
    console.print(rich_table("Text predictions written", scored.rows()))
    with engine.connect() as conn:
        for title, sql in EXAMPLE_QUERIES.items():
            console.print(f"\n-- {title}\n{sql};", highlight=False)
            console.print(rich_table("", pd.read_sql(text(sql), conn)))
    return TextDemoSummary(ingested, trained, scored)
