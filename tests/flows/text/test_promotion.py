"""Text promotion without an MLflow store: a champion that cannot score the held-out documents
(or cannot be loaded) is replaced, and the reason says so, on the decision and on the tags."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest

import flows.text.promote as text_promote
from flows.errors import SeqcastError
from flows.text.candidates import TextCandidate
from flows.text.params import ClassifierParams
from tests.support.registry import RecordingClient

NAME = "seqcast-sentiment"


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> RecordingClient:
    """A registry whose champion is v1; promotion's calls are recorded."""
    recording = RecordingClient()
    monkeypatch.setattr(text_promote, "MlflowClient", lambda: recording)
    monkeypatch.setattr(text_promote, "get_alias", lambda c, n, a: SimpleNamespace(version="1"))
    monkeypatch.setattr(text_promote, "load_text_model", lambda name, version: object())
    return recording


def promote() -> Any:
    frame = pd.DataFrame({"doc_id": [f"d{i}" for i in range(200)], "text": "x", "label": "fresh"})
    candidate = TextCandidate("classifier", "run", "2", 0.75, {}, model=object())  # type: ignore[arg-type]
    return text_promote.promote_text.fn(ClassifierParams(task="sentiment"), candidate, frame)


def test_a_champion_that_cannot_score_is_replaced_and_the_reason_says_so(
    client: RecordingClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def cannot_score(kind: str, model: Any, test: pd.DataFrame) -> dict[str, Any]:
        raise ValueError("label 'mixed' was never seen in training")

    monkeypatch.setattr(text_promote, "held_out_score", cannot_score)
    decision = promote()

    assert decision.promoted is True
    assert decision.reason.startswith("champion v1 cannot score this data")
    assert "never seen" in decision.reason
    assert client.aliases == {(NAME, "champion"): "2"}
    assert client.tags[(NAME, "2")]["promotion_reason"] == decision.reason
    assert client.tags[(NAME, "2")]["previous_champion"] == "1"
    assert client.tags[(NAME, "1")]["challenge_result"] == "replaced by v2"


def test_a_champion_that_cannot_be_loaded_is_replaced(
    client: RecordingClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unloadable(name: str, version: str) -> Any:
        raise SeqcastError(f"model {name} version {version} is no seqcast text model; retrain it")

    monkeypatch.setattr(text_promote, "load_text_model", unloadable)
    decision = promote()
    assert decision.promoted and "cannot be loaded" in decision.reason
    assert decision.champion_score is None and decision.champion_problem is not None


@pytest.mark.parametrize(("champion", "promoted", "op"), [(0.7, True, ">"), (0.75, False, "<=")])
def test_the_challenger_must_score_higher_than_the_champion(
    client: RecordingClient,
    monkeypatch: pytest.MonkeyPatch,
    champion: float,
    promoted: bool,
    op: str,
) -> None:
    monkeypatch.setattr(text_promote, "held_out_score", lambda k, m, t: {"score": champion})
    decision = promote()
    assert decision.promoted is promoted
    assert f"challenger score 0.7500 {op} champion v1 {champion:.4f} on the same" in decision.reason
    assert "held-out documents" in decision.reason
    assert client.tags[(NAME, "2")]["promotion"] == ("promoted" if promoted else "kept champion")
    assert float(client.tags[(NAME, "1")]["promotion_champion_score"]) == champion
