"""``seqcast ingest-text``, ``train-text`` and ``score-text``: the text flows from the shell."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, cast

import typer

from flows.cli.common import precheck, preflight, print_rejects, print_rows, user_errors
from flows.errors import SeqcastError

if TYPE_CHECKING:
    from flows.text.results import TextTrainingSummary

app = typer.Typer()


@app.command("ingest-text")
@user_errors
def ingest_text(
    paths: list[Path] = typer.Argument(None, help="CSV/TSV (text,label,...), CoNLL or CoNLL-U"),
    format: str | None = typer.Option(None, "--format", help="csv, tsv, conll or conllu"),
    task: str | None = typer.Option(None, help="task the labels/tags are for: sentiment, ner, pos"),
    bundled: list[str] = typer.Option(
        [], "--bundled", help="bundled real data: rotten_tomatoes, turkish_treebank, stock_reviews"
    ),
    label_column: str | None = typer.Option(None, help="name of the label column (CSV/TSV)"),
    sources: bool = typer.Option(
        False, "--sources", help="also load the project file's document sources (documents:)"
    ),
    source: list[str] = typer.Option([], "--source", "-s", help="only this document source"),
) -> None:
    """Load documents with their labels or tags; malformed records go to rejected_rows."""
    precheck()  # the database, before the flow modules load
    from flows.project import load_project, require
    from flows.text.ingest import ingest_text as ingest_flow
    from flows.text.params import IngestTextParams

    config = str(require()) if sources or source else None
    params = IngestTextParams(
        paths=[str(p) for p in paths or []],
        format=format,
        task=task,
        bundled=bundled,
        label_column=label_column,
        config=config,
        sources=source,
    )
    if config is not None and not load_project(config).select_documents(source):
        raise SeqcastError(f"{config} declares no document sources (documents:)")
    if not params.paths and not params.bundled and config is None:
        raise SeqcastError("nothing to ingest: give files, --bundled rotten_tomatoes, or --sources")
    preflight()
    results = ingest_flow(params)
    print_rows(
        "ingest-text",
        results,
        ["source", "task", "received", "accepted", "rejected", "inserted", "updated",
         "already_loaded"],
    )  # fmt: skip
    for r in results:
        print_rejects(cast(list[str], r.get("first_rejects", [])))


@app.command("train-text")
@user_errors
def train_text(
    classifier_task: str | None = typer.Option("sentiment", help="'' to skip the classifier"),
    tagger_task: str | None = typer.Option("pos", help="'' to skip the tagger"),
    max_epochs: int | None = typer.Option(None, help="epochs for both models (default: theirs)"),
    classifier_recipe: str | None = typer.Option(
        None, help="a validated recipe for what is not given: sst2 (bench/ACCURACY.md)"
    ),
    tagger_recipe: str | None = typer.Option(
        None, help="a validated recipe for what is not given: conll (NER) or ud (POS)"
    ),
) -> None:
    """Train, register and promote the text classifier and tagger."""
    precheck()  # the database, before the flow modules load
    from pydantic import ValidationError

    from flows.text.params import ClassifierParams, TaggerParams, TrainTextParams
    from flows.text.train import train_text as train_flow

    extra = {"max_epochs": max_epochs} if max_epochs else {}
    try:
        params = TrainTextParams(
            classifier=ClassifierParams.model_validate(
                {"task": classifier_task, "recipe": classifier_recipe, **extra}
            )
            if classifier_task
            else None,
            tagger=TaggerParams.model_validate(
                {"task": tagger_task, "recipe": tagger_recipe, **extra}
            )
            if tagger_task
            else None,
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"{e['loc'][-1] if e['loc'] else 'recipe'}: {e['msg']}" for e in exc.errors()
        )
        raise SeqcastError(f"train-text: {problems}") from None
    preflight()
    summary = train_flow(params)
    print_text_training(summary)


def print_text_training(summary: TextTrainingSummary) -> None:
    """Each text model's held-out score and the promotion decision."""
    rows = summary.rows()
    if rows:
        print_rows("text models (held-out documents)", rows, TRAINING_COLUMNS)


TRAINING_COLUMNS = ("task", "model", "documents", "held-out score", "champion", "reason")


@app.command("score-text")
@user_errors
def score_text(
    classifier_task: list[str] = typer.Option(["sentiment"], help="classifier task(s)"),
    tagger_task: list[str] = typer.Option(["pos"], help="tagger task(s)"),
    limit: int | None = typer.Option(None, help="documents per model at most"),
    covariates: bool = typer.Option(
        True, help="load daily sentiment per linked series as past-only covariates"
    ),
) -> None:
    """Score documents not yet scored by each champion; write predictions in one transaction;
    then each classifier's daily sentiment per linked series into the covariates table."""
    precheck()  # the database, before the flow modules load
    from flows.text.params import ScoreTextParams
    from flows.text.results import COVARIATE_COLUMNS, SCORING_COLUMNS
    from flows.text.score import score_text as score_flow

    params = ScoreTextParams(
        classifier_tasks=[t for t in classifier_task if t],
        tagger_tasks=[t for t in tagger_task if t],
        limit=limit,
        sentiment_covariates=covariates,
    )
    preflight()
    summary = score_flow(params)
    print_rows("score-text", summary.rows(), SCORING_COLUMNS)
    if summary.covariates:
        print_rows("covariates", summary.covariate_rows(), COVARIATE_COLUMNS)
