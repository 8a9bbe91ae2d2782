"""Model lifecycle in the MLflow registry: champion/challenger promotion and rollback.

Every retrain registers a version (the challenger). It becomes ``champion`` only when it beats
both the seasonal-naive baseline and the current champion re-evaluated on the same, most
recent holdout. Whatever the outcome, the reason is recorded as tags on both versions, and a
promoted version remembers the one it replaced (``previous_champion``) so
:func:`rollback` can move the alias back.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from flows.errors import SeqcastError
from flows.series.data import GroupData
from flows.series.params import ModelGroup
from flows.tracking.registry import get_alias, load_forecaster
from forecasting.backtest import BacktestResult
from forecasting.forecaster import ArtifactError, GlobalForecaster

CHAMPION = "champion"


@dataclass
class Candidate:
    """A trained and registered model version with its backtest."""

    cell: str
    run_id: str
    version: str
    backtest: BacktestResult
    forecaster: GlobalForecaster = field(repr=False)

    @property
    def score(self) -> float:
        return score_of(self.backtest.summary["model"])


def score_of(summary: dict[str, float]) -> float:
    """Lower is better: mean MASE across series, sMAPE where MASE is undefined."""
    for key in ("mase", "smape"):
        value = summary.get(key, math.nan)
        if math.isfinite(value):
            return value
    return math.inf  # no backtest window: never better than anything measured


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


def _tag(client: MlflowClient, name: str, version: str, tags: dict[str, Any]) -> None:
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, str(value))


def promote(group: ModelGroup, candidates: list[Candidate], data: GroupData) -> dict[str, Any]:
    """Alias the best candidate ``champion`` if it beats seasonal naive and the champion."""
    client = MlflowClient()
    name = group.registered_model
    best = min(candidates, key=lambda c: c.score)
    holdout_end = pd.Timestamp(data.frame["ts"].max()).isoformat() if len(data.frame) else ""
    score, naive = common_scores(best.backtest, best.backtest, "seasonal_naive")
    beats_naive = score < naive
    current = get_alias(client, name, CHAMPION)
    decision: dict[str, Any] = {
        "challenger": f"{best.cell} v{best.version}",
        "challenger_version": best.version,
        "challenger_score": score,
        "seasonal_naive_score": naive,
        "beats_seasonal_naive": bool(beats_naive),
        "holdout_end": holdout_end,
    }
    champion: GlobalForecaster | None = None
    champion_score = math.nan
    if current is not None:
        decision["champion"] = f"v{current.version}"
        try:
            champion = load_forecaster(name, str(current.version))
        except (ArtifactError, SeqcastError) as exc:
            # e.g. written by an older seqcast: it could not forecast either, so replace it.
            decision["champion_unusable"] = str(exc)
        if champion is not None:
            champion_bt = champion.evaluate(data.frame, best.forecaster.spec.panel)
            score, champion_score = common_scores(best.backtest, champion_bt)
            decision["challenger_score"] = score
            decision["champion_score"] = champion_score
    versus = f"MASE {score:.4f} vs seasonal naive {naive:.4f}"
    if not beats_naive:
        promoted, reason = False, f"challenger does not beat seasonal naive ({versus})"
    elif current is None:
        promoted, reason = True, f"no champion yet; {versus}"
    elif champion is None:
        promoted, reason = True, f"champion v{current.version} cannot be loaded; {versus}"
    else:
        promoted = score < champion_score
        reason = (
            f"challenger MASE {score:.4f} {'<' if promoted else '>='} champion "
            f"v{current.version} {champion_score:.4f} on the same holdout (ending "
            f"{holdout_end}); {versus}"
        )
    if promoted:
        client.set_registered_model_alias(name, CHAMPION, best.version)
    recorded = {
        "promotion_holdout_end": holdout_end,
        "promotion_challenger_score": f"{score:.6g}",
        "promotion_seasonal_naive_score": f"{naive:.6g}",
        "beats_seasonal_naive": str(bool(beats_naive)).lower(),
    }
    if math.isfinite(champion_score):
        recorded["promotion_champion_score"] = f"{champion_score:.6g}"
    challenger_tags = {
        **recorded,
        "promotion": "promoted" if promoted else "kept champion",
        "promotion_reason": reason,
    }
    if promoted and current is not None:
        challenger_tags["previous_champion"] = str(current.version)
    _tag(client, name, best.version, challenger_tags)
    if current is not None:
        _tag(
            client,
            name,
            str(current.version),
            {
                **recorded,
                "challenged_by": best.version,
                "challenge_result": (
                    f"replaced by v{best.version}" if promoted else "stayed champion"
                ),
                "challenge_reason": reason,
            },
        )
    for other in candidates:
        if other is not best:
            _tag(
                client,
                name,
                other.version,
                {
                    "promotion": "not the best candidate",
                    "promotion_reason": f"v{best.version} ({best.cell}) scored lower",
                },
            )
    decision.update(promoted=promoted, reason=reason)
    return decision


def champion_weights(group: ModelGroup) -> tuple[GlobalForecaster | None, str]:
    """The current champion (to warm-start from), or None and why not."""
    client = MlflowClient()
    current = get_alias(client, group.registered_model, CHAMPION)
    if current is None:
        return None, "no champion yet: training from scratch"
    try:
        return load_forecaster(group.registered_model, str(current.version)), (
            f"champion v{current.version}"
        )
    except (ArtifactError, SeqcastError) as exc:
        return None, f"champion v{current.version} cannot be loaded ({exc}): from scratch"


def resolve_registered_name(client: MlflowClient, name: str) -> str:
    """``glucose`` or ``seqcast-glucose`` -> the registered model's name; fail naming it."""
    for candidate in (name, f"seqcast-{name}"):
        try:
            client.get_registered_model(candidate)
            return candidate
        except MlflowException:
            continue
    raise SeqcastError(
        f"no registered model {name!r} (nor 'seqcast-{name}') in the MLflow registry; "
        "run `seqcast train` first or check MLFLOW_TRACKING_URI"
    )


def rollback(name: str, to_version: str | None = None) -> tuple[ModelVersion, ModelVersion]:
    """Move ``name@champion`` back to ``to_version`` (default: the champion it replaced).

    Returns (the version that was champion, the version that is champion now).
    """
    client = MlflowClient()
    name = resolve_registered_name(client, name)
    current = get_alias(client, name, CHAMPION)
    if current is None:
        raise SeqcastError(f"{name} has no champion to roll back")
    target = to_version or current.tags.get("previous_champion")
    if not target:
        raise SeqcastError(
            f"{name}@champion is v{current.version}, which replaced no earlier champion; "
            "give the version to roll back to with --to"
        )
    if str(target) == str(current.version):
        raise SeqcastError(f"v{target} is already {name}@champion")
    try:
        version = client.get_model_version(name, str(target))
    except MlflowException as exc:
        raise SeqcastError(f"{name} has no version {target!r}: {exc}") from exc
    client.set_registered_model_alias(name, CHAMPION, str(version.version))
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    _tag(
        client,
        name,
        str(current.version),
        {"promotion": "rolled back", "rolled_back_at": now, "rolled_back_to": version.version},
    )
    _tag(
        client,
        name,
        str(version.version),
        {"promotion": "restored by rollback", "restored_at": now, "restored_from": current.version},
    )
    return current, client.get_model_version(name, str(version.version))
