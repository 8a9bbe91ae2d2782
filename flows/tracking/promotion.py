"""The champion/challenger decision, as a pure function of scores: no registry, no data.

The flows score the challenger (and, when there is one, the current champion on the same
holdout); :func:`decide` turns those scores into a :class:`Decision`, and
:func:`flows.tracking.lifecycle.record` writes it to the registry. Forecasters and text models
share both; they differ only in which way a score is better and what the holdout is called.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Better = Literal["lower", "higher"]
BASELINE = "seasonal naive"


@dataclass(frozen=True)
class Challenger:
    """The best candidate of a retrain and its score on the holdout.

    Attributes:
        label: what it is (``lstm``, ``classifier``), shown in reasons and tables.
        version: its registry version.
        score: its score on the holdout windows the baseline was scored on.
        baseline_score: the seasonal-naive baseline's score on those windows; None where no
            baseline applies (text models).
    """

    label: str
    version: str
    score: float
    baseline_score: float | None = None


@dataclass(frozen=True)
class ChampionScore:
    """The current champion re-evaluated on the challenger's holdout, or why it could not be.

    Attributes:
        version: its registry version.
        score: its score on the holdout; None when it could not be loaded or could not score.
        challenger_score: the challenger's score over exactly the part of the holdout the
            champion could score, when that differs from the challenger's own.
        cannot_load: why the champion's artifact could not be loaded.
        cannot_score: why the loaded champion could not score the holdout.
        scored_as: the version that was scored in its place, when not itself (a refit
            champion trained on the holdout: its selected version, see flows.tracking.refits).
    """

    version: str
    score: float | None = None
    challenger_score: float | None = None
    cannot_load: str | None = None
    cannot_score: str | None = None
    scored_as: str | None = None

    @property
    def problem(self) -> str | None:
        """Why the champion takes no part in the comparison, or None when it does."""
        if self.cannot_load is not None or self.cannot_score is not None:
            return self.cannot_load or self.cannot_score
        return None if self.score is not None else "no score on the holdout"


@dataclass(frozen=True)
class Decision:
    """Whether the challenger became champion, on what scores, and why.

    Attributes:
        candidate: the challenger's label (``lstm``, ``classifier``).
        version: the challenger's registry version.
        score: the challenger's score in the comparison that decided (recorded on both
            versions as ``promotion_challenger_score``).
        better: whether a lower or a higher score is better.
        metric: the score's name in reasons (``MASE``, ``score``).
        holdout_end: the newest timestamp of the holdout (forecasters), else None.
        baseline_score: the seasonal-naive score, where a baseline applies.
        beats_baseline: whether the challenger beats it (None where no baseline applies).
        champion_version: the champion when the decision was taken, or None.
        champion_score: its score on the same holdout, where it could be scored.
        champion_problem: why it could not be loaded or could not score, or None.
        promoted: whether the challenger is champion now.
        reason: one sentence saying why.
        refit_version: the challenger refit on every point, champion in its place (set after
            the decision, see flows.tracking.refits), or None.
        refit_failure: why that refit failed (the challenger itself is champion), or None.
    """

    candidate: str
    version: str
    score: float
    better: Better
    metric: str
    holdout_end: str | None
    baseline_score: float | None
    beats_baseline: bool | None
    champion_version: str | None
    champion_score: float | None
    champion_problem: str | None
    promoted: bool
    reason: str
    refit_version: str | None = None
    refit_failure: str | None = None

    @property
    def challenger(self) -> str:
        """``lstm v3``: the challenger as shown to users."""
        return f"{self.candidate} v{self.version}"

    @property
    def champion_after(self) -> str | None:
        """The version that is champion after this decision (None: still no champion)."""
        return (self.refit_version or self.version) if self.promoted else self.champion_version

    @property
    def change(self) -> str:
        """``champion is now v3`` or ``champion stays v2`` / ``champion stays (none)``."""
        if self.promoted and self.refit_version is not None:
            return f"champion is now v{self.refit_version} (v{self.version} refit on all data)"
        if self.promoted:
            return f"champion is now v{self.version}"
        kept = f"v{self.champion_version}" if self.champion_version else "(none)"
        return f"champion stays {kept}"


def is_better(score: float, other: float, better: Better) -> bool:
    """Whether ``score`` is strictly better than ``other`` (a tie is not better)."""
    return score < other if better == "lower" else score > other


def decide(
    challenger: Challenger,
    champion: ChampionScore | None,
    *,
    better: Better = "lower",
    metric: str = "MASE",
    holdout: str = "holdout",
    holdout_end: str | None = None,
) -> Decision:
    """Whether ``challenger`` replaces ``champion``, and why.

    A challenger that does not beat the seasonal-naive baseline is never promoted, not even
    when there is no champion. Otherwise it is promoted when there is no champion, when the
    champion cannot be loaded or cannot score the holdout (it could not forecast either), or
    when it scores strictly better than the champion on the same holdout; a tie keeps the
    champion.

    Args:
        challenger: the best candidate and its scores.
        champion: the current champion re-evaluated on the same holdout, or None.
        better: ``lower`` (MASE) or ``higher`` (accuracy, F1) scores are better.
        metric: the score's name in the reason.
        holdout: what the holdout is, in the reason (``holdout (ending ...)``,
            ``120 held-out documents``).
        holdout_end: the newest timestamp of the holdout, recorded as a tag.

    Returns:
        The decision; nothing is written anywhere.
    """
    compared = champion if champion is not None and champion.problem is None else None
    score = challenger.score
    if compared is not None and compared.challenger_score is not None:
        score = compared.challenger_score
    baseline = challenger.baseline_score
    beats = None if baseline is None else is_better(challenger.score, baseline, better)
    promoted, reason = _verdict(champion, score, better, metric, holdout)
    if baseline is not None:
        versus = f"{metric} {challenger.score:.4f} vs {BASELINE} {baseline:.4f}"
        if beats:
            reason = f"{reason}; {versus}"
        else:
            promoted, reason = False, f"challenger does not beat {BASELINE} ({versus})"
    return Decision(
        candidate=challenger.label,
        version=challenger.version,
        score=score,
        better=better,
        metric=metric,
        holdout_end=holdout_end,
        baseline_score=baseline,
        beats_baseline=beats,
        champion_version=None if champion is None else champion.version,
        champion_score=None if compared is None else compared.score,
        champion_problem=None if champion is None else champion.problem,
        promoted=promoted,
        reason=reason,
    )


def _verdict(
    champion: ChampionScore | None,
    score: float,
    better: Better,
    metric: str,
    holdout: str,
) -> tuple[bool, str]:
    """Promoted or not, and why, judged against the champion alone."""
    if champion is None:
        return True, "no champion yet"
    v = champion.version
    if champion.cannot_load is not None:
        return True, f"champion v{v} cannot be loaded ({champion.cannot_load})"
    if champion.problem is not None or champion.score is None:
        return True, f"champion v{v} cannot score this data ({champion.problem})"
    if champion.scored_as is not None:
        v = f"{v} (scored as v{champion.scored_as}, the fit it refits)"
    won = is_better(score, champion.score, better)
    op = ("<" if won else ">=") if better == "lower" else (">" if won else "<=")
    return won, (
        f"challenger {metric} {score:.4f} {op} champion v{v} {champion.score:.4f} "
        f"on the same {holdout}"
    )
