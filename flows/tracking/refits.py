"""A promoted candidate refit on every point: the registry records for it.

After a promotion (:func:`flows.tracking.lifecycle.record`) the flow may train the selected
recipe again on all data up to the last observation and register that as a new version. Here:
:func:`record_refit` moves ``champion`` to the refit version and tags both versions;
:func:`record_refit_failure` leaves the selected version champion and says why; and
:func:`holdout_version` names the version a champion is scored as on a later holdout (a refit
version trained on that holdout, so its selected version stands in for it).
"""

from __future__ import annotations

from dataclasses import replace

from mlflow.entities.model_registry import ModelVersion
from mlflow.tracking import MlflowClient

from flows.tracking.lifecycle import CHAMPION, decision_tags
from flows.tracking.promotion import Decision

# On a refit version: the run and version it refits (whose holdout evidence it carries).
REFIT_OF_RUN = "refit.of_run"
REFIT_OF_VERSION = "refit.of_version"


def holdout_version(version: ModelVersion) -> str:
    """The version to score ``version`` as on a new holdout: itself, or the selected version
    it is a refit of (the refit trained on data that a later holdout covers)."""
    return str(version.tags.get(REFIT_OF_VERSION) or version.version)


def record_refit(
    client: MlflowClient,
    registered_model: str,
    decision: Decision,
    refit_version: str,
    evidence: dict[str, str],
) -> Decision:
    """``refit_version`` becomes champion in place of the promoted ``decision.version``.

    The refit version gets the decision's tags (as the promoted version did), the link to
    the selected run and version, and ``evidence`` (the selected run's holdout metrics, the
    refit's data end and mode); the selected version gets ``refit`` (``v<N>``).
    """
    name, selected = registered_model, decision.version
    client.set_registered_model_alias(name, CHAMPION, refit_version)
    note = f"refit on every point as v{refit_version} (of v{selected})"
    tags = {
        **decision_tags(decision),
        **evidence,
        REFIT_OF_VERSION: selected,
        "promotion": "promoted",
        "promotion_reason": f"{decision.reason}; {note}",
    }
    if decision.champion_version is not None:
        tags["previous_champion"] = decision.champion_version
    for key, value in tags.items():
        client.set_model_version_tag(name, refit_version, key, value)
    client.set_model_version_tag(name, selected, "refit", f"v{refit_version}")
    client.set_model_version_tag(name, selected, "promotion", f"promoted, then {note}")
    return replace(decision, refit_version=refit_version, reason=f"{decision.reason}; {note}")


def record_refit_failure(
    client: MlflowClient, registered_model: str, decision: Decision, why: str
) -> Decision:
    """The refit failed: the selected version stays champion, tagged ``refit=failed`` and
    ``refit_failure`` (why)."""
    client.set_model_version_tag(registered_model, decision.version, "refit", "failed")
    client.set_model_version_tag(registered_model, decision.version, "refit_failure", why[:4000])
    note = f"refit failed ({why}); v{decision.version} forecasts unrefit"
    return replace(decision, refit_failure=why, reason=f"{decision.reason}; {note}")
