"""Promotion of a group's best candidate: score it and the current champion on the same holdout,
decide (flows/tracking/promotion.py) and record the decision in the registry."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from mlflow.tracking import MlflowClient

from flows.errors import SeqcastError
from flows.series.candidates import Candidate, score_of
from flows.series.data import GroupData
from flows.series.params import ModelGroup
from flows.tasks import io_task
from flows.tracking.lifecycle import CHAMPION, record
from flows.tracking.promotion import Challenger, ChampionScore, Decision, decide
from flows.tracking.refits import holdout_version
from flows.tracking.registry import get_alias, load_model
from forecasting.backtest import BacktestResult
from forecasting.ensemble import Forecaster
from forecasting.forecaster import ArtifactError
from forecasting.panel import PanelConfig, PanelError


def common_scores(
    a: BacktestResult, b: BacktestResult, method_b: str = "model"
) -> tuple[float, float]:
    """Scores of ``a``'s model and ``b``'s ``method_b`` over the series both cover."""
    pa = a.per_series[a.per_series["method"] == "model"].set_index("series_id")
    pb = b.per_series[b.per_series["method"] == method_b].set_index("series_id")
    common = pa.index.intersection(pb.index)
    if common.empty:
        return score_of(a.summary["model"]), score_of(b.summary.get(method_b, {}))

    def score(frame: pd.DataFrame) -> float:
        part = frame.loc[common]
        return score_of({"mase": float(part["mase"].mean()), "smape": float(part["smape"].mean())})

    return score(pa), score(pb)


def best_candidate(candidates: Sequence[Candidate]) -> Candidate:
    """The candidate with the lowest backtest score (the first of equals)."""
    return min(candidates, key=lambda c: c.score)


def challenger_of(best: Candidate) -> Challenger:
    """``best`` scored against seasonal naive on its own backtest windows."""
    score, naive = common_scores(best.backtest, best.backtest, "seasonal_naive")
    return Challenger(best.cell, best.version, score, naive)


def champion_on_holdout(
    registered_model: str,
    best: Candidate,
    frame: pd.DataFrame,
    panel: PanelConfig,
    exogenous: pd.DataFrame | None = None,
) -> ChampionScore | None:
    """The current champion re-evaluated on ``frame`` with the challenger's split, or None.

    ``exogenous`` holds the challenger's covariates; a champion that takes others cannot be
    scored on them (``cannot_score`` says which columns it lacks) and is replaced."""
    current = get_alias(MlflowClient(), registered_model, CHAMPION)
    if current is None:
        return None
    version = str(current.version)
    # A refit champion trained on this holdout: the version it refits is scored instead.
    scored = holdout_version(current)
    try:
        champion: Forecaster = load_model(registered_model, scored)  # single or ensemble
    except (ArtifactError, SeqcastError) as exc:
        # e.g. written by an older seqcast: it could not forecast either, so replace it.
        return ChampionScore(version, cannot_load=str(exc))
    try:
        evaluated = champion.evaluate(frame, panel, exogenous)
    except (PanelError, ArtifactError, SeqcastError) as exc:
        return ChampionScore(version, cannot_score=str(exc))
    challenger_score, champion_score = common_scores(best.backtest, evaluated)
    return ChampionScore(
        version,
        score=champion_score,
        challenger_score=challenger_score,
        scored_as=None if scored == version else scored,
    )


@io_task(name="promote")
def promote_group(group: ModelGroup, candidates: list[Candidate], data: GroupData) -> Decision:
    """Alias the best candidate ``champion`` if it beats seasonal naive and the champion."""
    best = best_candidate(candidates)
    holdout_end = pd.Timestamp(data.frame["ts"].max()).isoformat() if len(data.frame) else ""
    champion = champion_on_holdout(
        group.registered_model, best, data.frame, best.forecaster.spec.panel, data.exogenous
    )
    decision = decide(
        challenger_of(best),
        champion,
        better="lower",
        metric="MASE",
        holdout=f"holdout (ending {holdout_end})",
        holdout_end=holdout_end,
    )
    others = [c.version for c in candidates if c is not best]
    record(MlflowClient(), group.registered_model, decision, others=others)
    return decision
