"""Model lifecycle in the MLflow registry: promotion decisions recorded, and rollback.

Every retrain registers a version (the challenger); :func:`flows.tracking.promotion.decide`
says whether it becomes ``champion``, and :func:`record` writes that here, for forecasters and
text models alike: the alias, and the reason and scores as tags on both versions. A promoted
version remembers the one it replaced (``previous_champion``) so :func:`rollback` can move the
alias back.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from typing import Any

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from flows.errors import SeqcastError
from flows.tracking.promotion import Decision
from flows.tracking.registry import get_alias, load_model
from forecasting.forecaster import ArtifactError, GlobalForecaster

CHAMPION = "champion"


def _tag(client: MlflowClient, name: str, version: str, tags: dict[str, Any]) -> None:
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, str(value))


def decision_tags(decision: Decision) -> dict[str, str]:
    """The scores and holdout of a decision, as recorded on both versions."""
    tags: dict[str, str] = {}
    if decision.holdout_end is not None:
        tags["promotion_holdout_end"] = decision.holdout_end
    tags["promotion_challenger_score"] = f"{decision.score:.6g}"
    if decision.baseline_score is not None:
        tags["promotion_seasonal_naive_score"] = f"{decision.baseline_score:.6g}"
        tags["beats_seasonal_naive"] = str(bool(decision.beats_baseline)).lower()
    if decision.champion_score is not None and math.isfinite(decision.champion_score):
        tags["promotion_champion_score"] = f"{decision.champion_score:.6g}"
    return tags


def record(
    client: MlflowClient, registered_model: str, decision: Decision, others: Iterable[str] = ()
) -> None:
    """Write ``decision`` to the registry: the alias when promoted, tags on every version.

    The challenger gets ``promotion`` (``promoted`` / ``kept champion``), ``promotion_reason``,
    the scores and, when it replaced one, ``previous_champion``; the champion it was compared
    with gets ``challenged_by``, ``challenge_result``, ``challenge_reason`` and the same scores;
    each of ``others`` (the versions of the other candidates) gets
    ``promotion=not the best candidate``.
    """
    name = registered_model
    if decision.promoted:
        client.set_registered_model_alias(name, CHAMPION, decision.version)
    scores = decision_tags(decision)
    challenger = {
        **scores,
        "promotion": "promoted" if decision.promoted else "kept champion",
        "promotion_reason": decision.reason,
    }
    if decision.promoted and decision.champion_version is not None:
        challenger["previous_champion"] = decision.champion_version
    _tag(client, name, decision.version, challenger)
    if decision.champion_version is not None:
        result = f"replaced by v{decision.version}" if decision.promoted else "stayed champion"
        _tag(
            client,
            name,
            decision.champion_version,
            {
                **scores,
                "challenged_by": decision.version,
                "challenge_result": result,
                "challenge_reason": decision.reason,
            },
        )
    for version in others:
        _tag(
            client,
            name,
            version,
            {
                "promotion": "not the best candidate",
                "promotion_reason": (
                    f"v{decision.version} ({decision.candidate}) scored {decision.better}"
                ),
            },
        )


def champion_weights(
    registered_model: str, cell: str | None = None
) -> tuple[GlobalForecaster | None, str]:
    """The current champion of ``registered_model`` (to warm-start from), or None and why not.

    When the champion is an ensemble, its member of ``cell`` (the first such), if it has one.
    """
    client = MlflowClient()
    current = get_alias(client, registered_model, CHAMPION)
    if current is None:
        return None, "no champion yet: training from scratch"
    try:
        champion = load_model(registered_model, str(current.version))
    except (ArtifactError, SeqcastError) as exc:
        return None, f"champion v{current.version} cannot be loaded ({exc}): from scratch"
    if isinstance(champion, GlobalForecaster):
        return champion, f"champion v{current.version}"
    for label, member in zip(champion.labels, champion.members, strict=True):
        if member.spec.model.cell == cell:
            return member, f"member {label} of the ensemble champion v{current.version}"
    return None, (
        f"from scratch: champion v{current.version} is an ensemble of "
        f"{', '.join(champion.labels)}, none a {cell}"
    )


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
