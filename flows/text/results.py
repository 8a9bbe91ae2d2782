"""What the text flows return: one typed result per text model, and the table rows the CLI,
the demo and the flows' artifacts all show."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from flows.tracking.promotion import Decision


@dataclass(frozen=True)
class TextTraining:
    """One text model trained, registered and put to the champion test."""

    task: str
    kind: str
    registered_model: str
    version: str
    run_id: str
    documents: int
    metrics: dict[str, float]
    decision: Decision

    @property
    def model(self) -> str:
        """``seqcast-sentiment v2``."""
        return f"{self.registered_model} v{self.version}"


def _fixed(value: float) -> str:
    return f"{value:.4f}"


@dataclass(frozen=True)
class TextTrainingSummary:
    """Every text model of a ``train-text`` run, in the order trained."""

    models: tuple[TextTraining, ...] = ()

    def task(self, task: str) -> TextTraining:
        """The model trained for ``task``."""
        for m in self.models:
            if m.task == task:
                return m
        raise KeyError(f"no text model for task {task!r} in this run")

    def rows(self) -> list[dict[str, Any]]:
        """One row per model; views pick their columns.

        Keys: task, kind, model (name and version), version, documents, held-out score (the
        score promotion compared), held-out accuracy, macro F1, champion (``promoted`` /
        ``kept``), reason.
        """
        return [
            {
                "task": m.task,
                "kind": m.kind,
                "model": m.model,
                "version": m.version,
                "documents": m.documents,
                "held-out score": _fixed(m.decision.score),
                "held-out accuracy": _fixed(
                    m.metrics.get("test_accuracy", m.metrics.get("test_score", math.nan))
                ),
                "macro F1": _fixed(m.metrics.get("test_macro_f1", math.nan)),
                "champion": "promoted" if m.decision.promoted else "kept",
                "reason": m.decision.reason,
            }
            for m in self.models
        ]


@dataclass(frozen=True)
class TextScoring:
    """One champion's scoring run: how many documents it scored and rows it wrote; ``kind``
    is ``classifier`` or ``tagger``."""

    task: str
    model: str
    documents: int
    written: int
    kind: str


@dataclass(frozen=True)
class ScoringSkipped:
    """A task with no champion to score with."""

    task: str
    reason: str


SCORING_COLUMNS = ("task", "model", "documents", "written", "skipped")


COVARIATE_COLUMNS = ("covariate", "model", "received", "accepted", "rejected", "inserted",
                     "updated", "already_loaded")  # fmt: skip


@dataclass(frozen=True)
class ScoringSummary:
    """Every task of a ``score-text`` run, in the order scored, and the sentiment covariate
    batches it loaded (``covariate``, ``model`` and the ingest counts, one dict each)."""

    outcomes: tuple[TextScoring | ScoringSkipped, ...] = ()
    covariates: tuple[dict[str, Any], ...] = ()

    def __add__(self, other: ScoringSummary) -> ScoringSummary:
        return ScoringSummary(self.outcomes + other.outcomes, self.covariates + other.covariates)

    def covariate(self, name: str) -> dict[str, Any]:
        """The batch that loaded covariate ``name`` in this run."""
        for c in self.covariates:
            if c["covariate"] == name:
                return c
        raise KeyError(f"no covariate {name!r} loaded in this run (no linked documents?)")

    def covariate_rows(self) -> list[dict[str, Any]]:
        """One row per covariate batch, keys :data:`COVARIATE_COLUMNS`."""
        return [{k: c[k] for k in COVARIATE_COLUMNS} for c in self.covariates]

    def task(self, task: str) -> TextScoring:
        """The scoring of ``task``; fails naming why when it was skipped."""
        for o in self.outcomes:
            if o.task == task:
                if isinstance(o, ScoringSkipped):
                    raise LookupError(f"task {task!r} was not scored: {o.reason}")
                return o
        raise KeyError(f"no task {task!r} in this run")

    def rows(self) -> list[dict[str, Any]]:
        """One row per task. Keys: task, model, documents, written, or task, skipped."""
        return [
            {"task": o.task, "skipped": o.reason}
            if isinstance(o, ScoringSkipped)
            else {"task": o.task, "model": o.model, "documents": o.documents, "written": o.written}
            for o in self.outcomes
        ]
