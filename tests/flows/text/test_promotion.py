"""Text promotion without an MLflow store: a champion that cannot score the held-out documents
is replaced, and the reason says so (on the decision and on the challenger's tags)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest

import flows.text.train as text_train
from flows.text.params import ClassifierParams
from flows.text.train import TextCandidate


class RecordingClient:
    """The MlflowClient calls promotion makes, recorded."""

    def __init__(self) -> None:
        self.tags: dict[tuple[str, str], dict[str, str]] = {}
        self.aliases: dict[tuple[str, str], str] = {}

    def set_model_version_tag(self, name: str, version: str, key: str, value: str) -> None:
        self.tags.setdefault((name, str(version)), {})[key] = str(value)

    def set_registered_model_alias(self, name: str, alias: str, version: str) -> None:
        self.aliases[(name, alias)] = str(version)


def test_a_champion_that_cannot_score_is_replaced_and_the_reason_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = RecordingClient()

    def cannot_score(kind: str, model: Any, test: pd.DataFrame) -> dict[str, Any]:
        raise ValueError("label 'mixed' was never seen in training")

    monkeypatch.setattr(text_train, "MlflowClient", lambda: client)
    monkeypatch.setattr(text_train, "get_alias", lambda c, n, a: SimpleNamespace(version="1"))
    monkeypatch.setattr(text_train, "load_text_model", lambda name, version: object())
    monkeypatch.setattr(text_train, "held_out_score", cannot_score)
    params = ClassifierParams(task="sentiment")
    frame = pd.DataFrame({"doc_id": [f"d{i}" for i in range(200)], "text": "x", "label": "fresh"})
    candidate = TextCandidate("classifier", "run", "2", 0.75, {}, model=object())  # type: ignore[arg-type]

    decision = text_train.promote_text.fn(params, candidate, frame)

    assert decision["promoted"] is True
    assert decision["reason"].startswith("champion v1 cannot score this data")
    assert "never seen" in decision["reason"]
    assert client.aliases == {("seqcast-sentiment", "champion"): "2"}
    assert client.tags[("seqcast-sentiment", "2")]["promotion_reason"] == decision["reason"]
