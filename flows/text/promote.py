"""Promotion of a text model: score the current champion on the challenger's held-out documents,
decide (flows/tracking/promotion.py) and record the decision in the registry."""

from __future__ import annotations

import pandas as pd
from mlflow.tracking import MlflowClient

from flows.errors import SeqcastError
from flows.tasks import io_task
from flows.text.candidates import Kind, TextCandidate, held_out_score, split_by_doc_id
from flows.text.params import ClassifierParams, TaggerParams
from flows.tracking.lifecycle import CHAMPION, record
from flows.tracking.promotion import Challenger, ChampionScore, Decision, decide
from flows.tracking.registry import get_alias, load_text_model
from nlp.artifact import ArtifactError


def champion_on_held_out(
    registered_model: str, kind: Kind, test: pd.DataFrame
) -> ChampionScore | None:
    """The current champion scored on ``test``, or None when there is no champion."""
    current = get_alias(MlflowClient(), registered_model, CHAMPION)
    if current is None:
        return None
    version = str(current.version)
    try:
        champion = load_text_model(registered_model, version)
    except (ArtifactError, SeqcastError) as exc:
        return ChampionScore(version, cannot_load=str(exc))
    try:
        return ChampionScore(version, score=float(held_out_score(kind, champion, test)["score"]))
    except ValueError as exc:  # e.g. labels the champion never saw
        return ChampionScore(version, cannot_score=str(exc))


@io_task()
def promote_text(
    params: ClassifierParams | TaggerParams, candidate: TextCandidate, frame: pd.DataFrame
) -> Decision:
    """Alias the candidate ``champion`` if it beats the current champion on the same test part."""
    _, _, test = split_by_doc_id(frame, params.val_fraction, params.test_fraction)
    decision = decide(
        Challenger(candidate.kind, candidate.version, candidate.score),
        champion_on_held_out(params.registered_model, candidate.kind, test),
        better="higher",
        metric="score",
        holdout=f"{len(test)} held-out documents",
    )
    record(MlflowClient(), params.registered_model, decision)
    return decision
