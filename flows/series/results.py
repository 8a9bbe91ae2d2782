"""What the forecasting flows return: one typed outcome per group (done, skipped, or failed with
its reason), and the table rows the CLI, the demo and the flows' artifacts all show.

One group's failure is not everyone's: the flows run every group, put each outcome in their
summary, and only then end Failed (:class:`GroupsFailed`, which carries the summary).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from prefect import get_run_logger

from flows.errors import USER_ERRORS, SeqcastError
from flows.tracking.promotion import Decision

S = TypeVar("S")


@dataclass(frozen=True)
class GroupFailure:
    """A group that could not be trained or forecast, and why.

    Attributes:
        group: the group's name.
        error: the exception's type (``SeqcastError``, ``KeyError``).
        message: the exception's message (first line).
        user_error: whether a user can fix it (bad data, missing model) or it is a bug.
    """

    group: str
    error: str
    message: str
    user_error: bool

    @classmethod
    def of(cls, group: str, exc: BaseException) -> GroupFailure:
        """The failure of ``group`` that ``exc`` describes."""
        lines = str(exc).strip().splitlines()
        return cls(
            group=group,
            error=type(exc).__name__,
            message=lines[0] if lines else repr(exc),
            user_error=isinstance(exc, USER_ERRORS),
        )

    @property
    def reason(self) -> str:
        """The message; for a bug, prefixed with the exception type."""
        return self.message if self.user_error else f"{self.error}: {self.message}"


def group_failed(group: str, exc: Exception) -> GroupFailure:
    """Log why ``group`` failed (with the traceback when it is a bug) and describe it."""
    logger = get_run_logger()
    if isinstance(exc, USER_ERRORS):
        logger.error("group %s failed: %s", group, exc)
    else:
        logger.error("group %s failed with a bug", group, exc_info=exc)
    return GroupFailure.of(group, exc)


class GroupsFailed(SeqcastError):
    """Some groups failed after every group ran; ``summary`` holds every group's outcome."""

    def __init__(self, summary: object, failures: Sequence[GroupFailure]) -> None:
        self.summary = summary
        self.failures = tuple(failures)
        named = "; ".join(f"{f.group} ({f.reason})" for f in self.failures)
        super().__init__(f"{len(self.failures)} group(s) failed: {named}")

    def __reduce__(self) -> tuple[Any, ...]:
        # Prefect persists a failed flow's exception: rebuild it from the same arguments.
        return (type(self), (self.summary, self.failures))


def summary_of(run: Callable[[], S]) -> S:
    """Run a flow and return its summary, also when it ended Failed because groups failed."""
    try:
        return run()
    except GroupsFailed as exc:
        return cast(S, exc.summary)


@dataclass(frozen=True)
class CandidateResult:
    """One trained and registered candidate: its cell, version, run and backtest metrics."""

    cell: str
    version: str
    run_id: str
    metrics: dict[str, float]


@dataclass(frozen=True)
class GroupTraining:
    """One group trained: its data, its candidates and the promotion decision."""

    group: str
    registered_model: str
    parent_run_id: str
    rows: int
    series: int
    candidates: tuple[CandidateResult, ...]
    decision: Decision
    settings: tuple[tuple[str, str, str], ...] = ()  # (setting, value, where it came from)

    def candidate(self, cell: str) -> CandidateResult:
        """The candidate of ``cell``."""
        for c in self.candidates:
            if c.cell == cell:
                return c
        raise KeyError(f"group {self.group!r} trained no {cell!r} candidate")


TRAINING_COLUMNS = (
    "group", "model", "version", "MASE", "sMAPE", "seasonal-naive MASE",
    "seasonal-naive sMAPE", "champion",
)  # fmt: skip


def _fixed(metrics: dict[str, float], key: str, digits: int) -> str:
    return f"{metrics.get(key, math.nan):.{digits}f}"


@dataclass(frozen=True)
class TrainingSummary:
    """Every group's outcome of a ``train-forecasters`` run, in the groups' order."""

    outcomes: tuple[GroupTraining | GroupFailure, ...] = ()
    # A drift check's decision per group (``retrain: why`` / ``no retrain: why``); empty
    # when every group was retrained unconditionally.
    decisions: dict[str, str] = field(default_factory=dict)

    @property
    def trained(self) -> list[GroupTraining]:
        """The groups that trained (promoted or not)."""
        return [o for o in self.outcomes if isinstance(o, GroupTraining)]

    @property
    def failed(self) -> list[GroupFailure]:
        """The groups that failed."""
        return [o for o in self.outcomes if isinstance(o, GroupFailure)]

    def outcome(self, group: str) -> GroupTraining | GroupFailure:
        """The outcome of ``group``."""
        for o in self.outcomes:
            if o.group == group:
                return o
        raise KeyError(f"no group {group!r} in this run")

    def group(self, group: str) -> GroupTraining:
        """The training of ``group``; fails naming the reason when the group failed."""
        found = self.outcome(group)
        if isinstance(found, GroupFailure):
            raise LookupError(f"group {group!r} failed: {found.reason}")
        return found

    def candidate_rows(self) -> list[dict[str, str]]:
        """One row per candidate next to the seasonal-naive baseline on the same windows.

        Keys: group, model (the cell), version, MASE, sMAPE, MAE, coverage and the
        seasonal-naive MASE, sMAPE and MAE (fixed decimals), champion (``yes`` for the version
        promoted by this run), run_id (its MLflow run). Views pick their columns.
        """
        rows = []
        for g in self.trained:
            for c in g.candidates:
                m = c.metrics
                rows.append(
                    {
                        "group": g.group,
                        "model": c.cell,
                        "version": c.version,
                        "MASE": _fixed(m, "backtest_mase", 3),
                        "sMAPE": _fixed(m, "backtest_smape", 2),
                        "MAE": _fixed(m, "backtest_mae", 3),
                        "coverage": _fixed(m, "backtest_coverage", 3),
                        "seasonal-naive MASE": _fixed(m, "seasonal_naive_mase", 3),
                        "seasonal-naive sMAPE": _fixed(m, "seasonal_naive_smape", 2),
                        "seasonal-naive MAE": _fixed(m, "seasonal_naive_mae", 3),
                        "champion": (
                            "yes" if g.decision.promoted and g.decision.version == c.version else ""
                        ),
                        "run_id": c.run_id,
                    }
                )
        return rows


@dataclass(frozen=True)
class GroupForecast:
    """One group forecast: the model that did it and the run written to the database."""

    group: str
    model: str
    version: str
    mlflow_run_id: str
    run_id: int
    rows: int
    series: int
    created: bool
    series_skipped: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ForecastSkipped:
    """A group with nothing to forecast (no champion yet, or no series it could forecast)."""

    group: str
    reason: str
    series_skipped: dict[str, str] = field(default_factory=dict)


ForecastOutcome = GroupForecast | ForecastSkipped | GroupFailure
FORECAST_COLUMNS = ("group", "model", "run_id", "rows", "series", "created", "skipped")


@dataclass(frozen=True)
class ForecastSummary:
    """Every group's outcome of a ``forecast`` run, in the groups' order."""

    outcomes: tuple[ForecastOutcome, ...] = ()

    @property
    def written(self) -> list[GroupForecast]:
        """The groups that wrote (or found already written) a forecast run."""
        return [o for o in self.outcomes if isinstance(o, GroupForecast)]

    @property
    def failed(self) -> list[GroupFailure]:
        """The groups that failed."""
        return [o for o in self.outcomes if isinstance(o, GroupFailure)]

    def outcome(self, group: str) -> ForecastOutcome:
        """The outcome of ``group``."""
        for o in self.outcomes:
            if o.group == group:
                return o
        raise KeyError(f"no group {group!r} in this run")

    def run(self, group: str) -> GroupForecast:
        """The forecast run of ``group``; fails naming why when there is none."""
        found = self.outcome(group)
        if not isinstance(found, GroupForecast):
            why = found.reason
            raise LookupError(f"group {group!r} wrote no forecast run: {why}")
        return found

    def rows(self) -> list[dict[str, Any]]:
        """One row per group that did not fail.

        Keys: group, model, run_id, rows, series, created, mlflow_run_id (forecasts written),
        skipped (why nothing was written), not forecast (the series left out and why).
        """
        rows: list[dict[str, Any]] = []
        for o in self.outcomes:
            if isinstance(o, GroupForecast):
                row: dict[str, Any] = {
                    "group": o.group,
                    "model": o.model,
                    "run_id": o.run_id,
                    "rows": o.rows,
                    "series": o.series,
                    "created": o.created,
                    "mlflow_run_id": o.mlflow_run_id,
                }
            elif isinstance(o, ForecastSkipped):
                row = {"group": o.group, "skipped": o.reason}
            else:
                continue
            row["not forecast"] = "; ".join(f"{k}: {v}" for k, v in o.series_skipped.items())
            rows.append(row)
        return rows


@dataclass(frozen=True)
class PipelineSummary:
    """A ``pipeline`` run: the ingest batches, why each group was retrained or not, the
    training of the groups that were due, and the forecasts."""

    ingest: list[dict[str, object]]
    retrain: dict[str, str]
    train: TrainingSummary
    forecast: ForecastSummary

    def ingest_counts(self) -> tuple[int, int]:
        """Rows received and accepted over every ingest batch."""
        received = sum(int(cast(int, b["received"])) for b in self.ingest)
        return received, sum(int(cast(int, b["accepted"])) for b in self.ingest)

    @property
    def failed(self) -> list[GroupFailure]:
        """Every failure: training first, then forecasting (a group may fail in both)."""
        return [*self.train.failed, *self.forecast.failed]
