"""Model groups for the flow tests: the demo's two groups with tiny, fast models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from flows.series.params import ModelGroup


def tiny_groups(**overrides: Any) -> list[ModelGroup]:
    """The glucose and prices groups with tiny models; ``overrides`` apply to both."""
    common: dict[str, Any] = dict(
        hidden_size=8,
        num_layers=1,
        max_epochs=2,
        windows_per_epoch=512,
        batch_size=64,
        cells=["lstm", "gru"],
    )
    common.update(overrides)
    return [
        ModelGroup(
            name="glucose",
            series_kind="sensor",
            window=24,
            horizon=6,
            season_length=288,
            val_size=600,
            test_size=240,
            **common,
        ),
        ModelGroup(
            name="prices",
            series_kind="price",
            window=20,
            horizon=5,
            season_length=5,
            val_size=100,
            test_size=50,
            **common,
        ),
    ]


def write_project(path: Path, groups: list[ModelGroup], **top: Any) -> Path:
    """A project file declaring ``groups`` with every setting given (nothing derived)."""
    selector = {"series_kind": "kind", "series_ids": "ids", "series_match": "match",
                "series_regex": "regex", "series_freq": "freq"}  # fmt: skip
    entries = []
    for g in groups:
        data = g.model_dump(exclude={"name", "horizon", "provenance", "series_exclude"})
        select = {selector[k]: data.pop(k) for k in selector if data.get(k) is not None}
        for k in selector:
            data.pop(k, None)
        # Covariates and attributes are top-level keys of a group, not settings.
        inputs = {k: data.pop(k) for k in ("covariates", "attributes") if k in data}
        entries.append(
            {"name": g.name, "select": select, "horizon": g.horizon, "derive": False,
             **{k: v for k, v in inputs.items() if v}, "settings": data}
        )  # fmt: skip
    path.write_text(yaml.safe_dump({**top, "groups": entries}, sort_keys=False))
    return path
