"""Model groups for the flow tests: the demo's two groups with tiny, fast models."""

from __future__ import annotations

from typing import Any

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
