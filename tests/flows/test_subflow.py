"""Subflows run without a heartbeat thread of their own; the top-level run keeps its own."""

from __future__ import annotations

from typing import Any

import pytest
from prefect import flow, flow_engine

from flows.tasks import subflow


@pytest.fixture
def heartbeats(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Each flow run's heartbeat interval, as the engine saw it when the run started."""
    seen: dict[str, Any] = {}
    original = flow_engine._send_heartbeats

    def recording(engine: Any, *args: Any, **kwargs: Any) -> Any:
        seen[engine.flow.name] = engine.heartbeat_seconds
        return original(engine, *args, **kwargs)

    monkeypatch.setattr(flow_engine, "_send_heartbeats", recording)
    return seen


@flow(name="child")
def child(x: int) -> int:
    return x + 1


@flow(name="parent")
def parent() -> int:
    nested = subflow(lambda: child(1))
    plain = child.with_options(name="plain-child")(2)
    return nested + plain


def test_a_subflow_has_no_heartbeat_thread_but_its_parent_does(
    prefect_harness: None, heartbeats: dict[str, Any]
) -> None:
    assert parent() == 5
    assert heartbeats["parent"] is not None and heartbeats["parent"] > 0
    assert heartbeats["child"] is None
    # The setting is only lifted for the subflow: a plain nested call still heartbeats.
    assert heartbeats["plain-child"] == heartbeats["parent"]


def test_outside_a_flow_run_subflow_just_calls(
    prefect_harness: None, heartbeats: dict[str, Any]
) -> None:
    assert subflow(lambda: child(5)) == 6
    assert heartbeats["child"] is not None and heartbeats["child"] > 0
