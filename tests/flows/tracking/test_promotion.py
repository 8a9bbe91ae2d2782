"""The champion/challenger decision as a pure function (no MLflow), and how it is recorded."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from flows.tracking.lifecycle import record
from flows.tracking.promotion import Challenger, ChampionScore, Decision, decide
from tests.support.registry import RecordingClient

HOLDOUT = dict(holdout="holdout (ending 2010-03-01T00:00:00+00:00)", holdout_end="2010-03-01")


def series(score: float, naive: float, champion: ChampionScore | None) -> Decision:
    """A forecaster's decision: lower MASE is better, seasonal naive is the bar."""
    return decide(Challenger("lstm", "3", score, naive), champion, **HOLDOUT)


def text(score: float, champion: ChampionScore | None) -> Decision:
    """A text model's decision: higher is better, no baseline."""
    return decide(
        Challenger("classifier", "3", score),
        champion,
        better="higher",
        metric="score",
        holdout="120 held-out documents",
    )


def test_no_champion_yet_promotes_a_challenger_that_beats_seasonal_naive() -> None:
    d = series(0.8, 1.0, None)
    assert d.promoted and d.beats_baseline
    assert d.reason == "no champion yet; MASE 0.8000 vs seasonal naive 1.0000"
    assert (d.champion_version, d.champion_score, d.champion_problem) == (None, None, None)
    assert d.challenger == "lstm v3" and d.change == "champion is now v3"
    assert d.champion_after == "3"


@pytest.mark.parametrize("champion", [None, ChampionScore("2", score=1.5, challenger_score=1.1)])
def test_a_challenger_worse_than_seasonal_naive_is_never_promoted(
    champion: ChampionScore | None,
) -> None:
    d = series(1.1, 1.0, champion)
    assert not d.promoted and d.beats_baseline is False
    assert (
        d.reason == "challenger does not beat seasonal naive (MASE 1.1000 vs seasonal naive 1.0000)"
    )
    assert d.change == ("champion stays (none)" if champion is None else "champion stays v2")


def test_a_tie_with_seasonal_naive_does_not_beat_it() -> None:
    d = series(1.0, 1.0, None)
    assert not d.promoted and d.beats_baseline is False


def test_a_champion_that_cannot_be_loaded_is_replaced() -> None:
    d = series(0.8, 1.0, ChampionScore("2", cannot_load="no seqcast_forecaster.pt; retrain it"))
    assert d.promoted
    assert d.reason == (
        "champion v2 cannot be loaded (no seqcast_forecaster.pt; retrain it); "
        "MASE 0.8000 vs seasonal naive 1.0000"
    )
    assert d.champion_version == "2" and d.champion_score is None
    assert d.champion_problem == "no seqcast_forecaster.pt; retrain it"


def test_a_champion_that_cannot_score_the_holdout_is_replaced() -> None:
    d = text(0.7, ChampionScore("2", cannot_score="labels ['mixed'] were not in the training data"))
    assert d.promoted
    assert d.reason.startswith("champion v2 cannot score this data (labels ['mixed']")
    assert d.champion_score is None and d.beats_baseline is None


def test_a_champion_without_a_score_cannot_score() -> None:
    d = text(0.7, ChampionScore("2"))
    assert d.promoted and d.reason == "champion v2 cannot score this data (no score on the holdout)"


def test_lower_is_better_against_the_champion_on_the_common_series() -> None:
    # The challenger's score over the series the champion covers is what is compared.
    better = series(0.8, 1.0, ChampionScore("2", score=0.9, challenger_score=0.85))
    assert better.promoted and better.score == 0.85 and better.champion_score == 0.9
    assert better.reason == (
        "challenger MASE 0.8500 < champion v2 0.9000 on the same holdout (ending "
        "2010-03-01T00:00:00+00:00); MASE 0.8000 vs seasonal naive 1.0000"
    )
    worse = series(0.8, 1.0, ChampionScore("2", score=0.7))
    assert not worse.promoted and worse.score == 0.8
    assert worse.reason.startswith("challenger MASE 0.8000 >= champion v2 0.7000 on the same")
    assert worse.change == "champion stays v2" and worse.champion_after == "2"


def test_higher_is_better_for_text_models() -> None:
    better = text(0.8, ChampionScore("2", score=0.7))
    assert better.promoted
    assert better.reason == (
        "challenger score 0.8000 > champion v2 0.7000 on the same 120 held-out documents"
    )
    worse = text(0.6, ChampionScore("2", score=0.7))
    assert not worse.promoted and "0.6000 <= champion v2 0.7000" in worse.reason


@pytest.mark.parametrize("make", [lambda c: series(0.8, 1.0, c), lambda c: text(0.8, c)])
def test_a_tie_with_the_champion_keeps_the_champion(
    make: Callable[[ChampionScore], Decision],
) -> None:
    d = make(ChampionScore("2", score=0.8))
    assert not d.promoted and d.change == "champion stays v2"


def test_record_tags_both_versions_and_the_other_candidates() -> None:
    client = RecordingClient()
    d = series(0.8, 1.0, ChampionScore("2", score=0.9))
    record(client, "seqcast-glucose", d, others=["4"])  # type: ignore[arg-type]
    assert client.aliases == {("seqcast-glucose", "champion"): "3"}
    scores = {
        "promotion_holdout_end": "2010-03-01",
        "promotion_challenger_score": "0.8",
        "promotion_seasonal_naive_score": "1",
        "beats_seasonal_naive": "true",
        "promotion_champion_score": "0.9",
    }
    assert client.tags[("seqcast-glucose", "3")] == {
        **scores,
        "promotion": "promoted",
        "promotion_reason": d.reason,
        "previous_champion": "2",
    }
    assert client.tags[("seqcast-glucose", "2")] == {
        **scores,
        "challenged_by": "3",
        "challenge_result": "replaced by v3",
        "challenge_reason": d.reason,
    }
    assert client.tags[("seqcast-glucose", "4")] == {
        "promotion": "not the best candidate",
        "promotion_reason": "v3 (lstm) scored lower",
    }


def test_record_keeps_the_alias_when_not_promoted() -> None:
    client = RecordingClient()
    d = text(0.6, ChampionScore("2", score=0.7))
    record(client, "seqcast-sentiment", d)  # type: ignore[arg-type]
    assert client.aliases == {}
    challenger = client.tags[("seqcast-sentiment", "3")]
    assert challenger["promotion"] == "kept champion" and "previous_champion" not in challenger
    assert "beats_seasonal_naive" not in challenger and "promotion_holdout_end" not in challenger
    assert client.tags[("seqcast-sentiment", "2")]["challenge_result"] == "stayed champion"


def test_a_refit_champion_is_scored_as_its_selected_version_and_the_refit_recorded() -> None:
    from flows.tracking.refits import record_refit, record_refit_failure

    d = series(0.7, 1.0, ChampionScore("5", score=0.9, scored_as="4"))
    assert d.promoted and d.champion_version == "5"
    assert "champion v5 (scored as v4, the fit it refits) 0.9000" in d.reason
    client = RecordingClient()
    record(client, "m", d)  # type: ignore[arg-type]
    refit = record_refit(client, "m", d, "6", {"refit.of_run": "abc"})  # type: ignore[arg-type]
    assert client.aliases[("m", "champion")] == "6"
    assert refit.refit_version == "6" and refit.champion_after == "6"
    assert refit.change == "champion is now v6 (v3 refit on all data)"
    six, three = client.tags[("m", "6")], client.tags[("m", "3")]
    assert six["refit.of_version"] == "3" and six["refit.of_run"] == "abc"
    assert six["previous_champion"] == "5" and six["promotion"] == "promoted"
    assert six["promotion_challenger_score"] == three["promotion_challenger_score"]
    assert three["refit"] == "v6" and "refit on every point as v6" in refit.reason
    failed = record_refit_failure(client, "m", d, "refit diverged: nan")  # type: ignore[arg-type]
    assert failed.refit_version is None and failed.champion_after == "3"
    assert client.tags[("m", "3")]["refit_failure"] == "refit diverged: nan"
    assert "refit failed (refit diverged: nan); v3 forecasts unrefit" in failed.reason
