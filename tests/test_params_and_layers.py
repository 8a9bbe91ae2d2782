"""Bad parameters are refused before work starts; the package layering of DESIGN.md holds."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from pydantic import ValidationError

from flows.params import IngestParams, ModelGroup, PipelineParams, default_groups

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"window": 0}, "window"),
        ({"horizon": 0}, "horizon"),
        ({"dropout": 1.0}, "dropout"),
        ({"cells": ["transformer"]}, "cells"),
        ({"series_ids": ["a"]}, "series_kind or series_ids"),
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
    glucose = default_groups()[0]
    spec = glucose.spec("gru")
    assert spec.model.cell == "gru" and spec.model.window == glucose.window
    assert spec.panel.test_size == glucose.test_size and spec.season_length == 288
    assert glucose.registered_model == "seqcast-glucose"


FORBIDDEN = {
    "forecasting": {"db", "nlp", "flows", "prefect", "mlflow", "sqlalchemy"},
    "nlp": {"db", "forecasting", "flows", "prefect", "mlflow", "sqlalchemy"},
    "db": {"forecasting", "nlp", "flows", "prefect", "mlflow", "torch"},
}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layers_import_only_what_design_allows(package: str) -> None:
    offenders = []
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [
                f"{path.relative_to(ROOT)}: {n}"
                for n in names
                if n.split(".")[0] in FORBIDDEN[package]
            ]
    assert offenders == []
