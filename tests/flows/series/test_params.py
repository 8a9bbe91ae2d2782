"""Bad group and flow parameters are refused before any work starts."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from flows.series.params import IngestParams, ModelGroup, PipelineParams


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"window": 0}, "window"),
        ({"horizon": 0}, "horizon"),
        ({"dropout": 1.0}, "dropout"),
        ({"cells": ["transformer"]}, "cells"),
        ({"series_kind": None}, "give a selector"),
        ({"series_regex": "("}, "does not compile"),
        ({"name": "Bad Name!"}, "name"),
        ({"test_size": 3, "horizon": 12}, "test_size"),
    ],
)
def test_model_group_rejects_out_of_range_values(kwargs: dict[str, object], field: str) -> None:
    base: dict[str, object] = {"name": "g", "series_kind": "sensor"}
    with pytest.raises(ValidationError, match=field):
        ModelGroup(**{**base, **kwargs})


def test_ingest_needs_kind_and_freq_together() -> None:
    with pytest.raises(ValidationError, match="kind and freq together"):
        IngestParams(kind="sensor")
    with pytest.raises(ValidationError):
        PipelineParams(retrain_after_hours=-1)


def test_defaults_map_to_forecasting_configs() -> None:
    glucose = ModelGroup(
        name="glucose", series_kind="sensor", window=48, horizon=12, season_length=288
    )
    spec = glucose.spec("gru")
    assert spec.model.cell == "gru" and spec.model.window == glucose.window
    assert spec.panel.test_size == glucose.test_size and spec.season_length == 288
    assert glucose.registered_model == "seqcast-glucose"


def test_a_groups_training_minutes_are_split_over_its_cells() -> None:
    group = ModelGroup(name="plant", series_kind="sensor", cells=["lstm", "gru", "rnn"],
                       train_minutes=1.5)  # fmt: skip
    assert [group.spec(c).train.time_budget_s for c in group.cells] == [30.0, 30.0, 30.0]
    assert ModelGroup(name="plant", series_kind="sensor").spec("lstm").train.time_budget_s is None
    # A refit (refit: true) trains once more: it takes an equal share of the minutes.
    refit = group.model_copy(update={"refit": True})
    assert refit.spec("lstm").train.time_budget_s == pytest.approx(22.5)
    with pytest.raises(ValidationError, match="train_minutes"):
        ModelGroup(name="plant", series_kind="sensor", train_minutes=0)
