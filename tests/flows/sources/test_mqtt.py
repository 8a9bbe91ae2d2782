"""MQTT source against the real Mosquitto broker: persistent session, QoS 1, ack after commit."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine, text

import db.ingest
from db import make_engine
from db.watermarks import read_watermark
from flows.errors import SeqcastError
from flows.sources.config import MqttSource
from flows.sources.runner import run_source

BROKER = ("127.0.0.1", 1883)


@pytest.fixture(scope="session")
def broker() -> None:
    try:
        socket.create_connection(BROKER, timeout=3).close()
    except OSError as exc:
        reason = f"MQTT broker at {BROKER[0]}:{BROKER[1]} not reachable ({exc})"
        if os.environ.get("SEQCAST_REQUIRE_MQTT") == "1":
            pytest.fail(f"{reason} (SEQCAST_REQUIRE_MQTT=1 makes it mandatory)")
        pytest.skip(reason)


def publish(
    messages: list[tuple[str, bytes]],
    every_s: float = 0.0,
    stop: threading.Event | None = None,
    sent: list[tuple[str, bytes]] | None = None,
) -> None:
    """Publish with QoS 1 and wait for the broker's acknowledgement of each.

    ``stop`` ends the publishing early; ``sent`` collects each message once acknowledged.
    """
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}")
    client.connect(*BROKER)
    client.loop_start()
    try:
        for topic, payload in messages:
            if stop is not None and stop.is_set():
                break
            info = client.publish(topic, payload, qos=1)
            info.wait_for_publish(60)  # returns on timeout too: a busy machine gets a minute
            assert info.is_published(), f"the broker did not acknowledge {topic} in 60 s"
            if sent is not None:
                sent.append((topic, payload))
            time.sleep(every_s)
    finally:
        client.disconnect()
        client.loop_stop()


def wait_until(condition: Callable[[], bool], seconds: float = 120) -> bool:
    """Poll ``condition`` until it holds or ``seconds`` pass (generous: machines get busy)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def readings(prefix: str, start: int, n: int) -> list[tuple[str, bytes]]:
    """n messages from two sites; each carries a temperature and a humidity reading."""
    out = []
    for i in range(start, start + n):
        site = "north" if i % 2 else "south"
        body = {"ts": f"2024-05-01T00:{i // 60:02d}:{i % 60:02d}Z", "temp": 20 + i / 10, "rh": 40}
        out.append((f"{prefix}/{site}/t1", json.dumps(body).encode()))
    return out


def _cfg(prefix: str, **kw: Any) -> MqttSource:
    base: dict[str, Any] = {
        "type": "mqtt",
        "name": "plant",
        "topic": f"{prefix}/+/+",
        "client_id": f"seqcast-test-{prefix.rsplit('/', 1)[-1]}",
        "series_id": "{t[2]}-{t[3]}-{field}",
        "declare": {"kind": "sensor", "freq": "s"},
        "idle_seconds": 1.0,
        "batch_seconds": 0.5,
        "batch_size": 25,
    }
    return MqttSource.model_validate(base | kw)


def _rows(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        n = conn.execute(text("SELECT COUNT(*) FROM observations")).scalar_one()
        keys = conn.execute(
            text("SELECT COUNT(*) FROM (SELECT DISTINCT series_id, ts FROM observations) k")
        ).scalar_one()
    return int(n), int(keys)


@pytest.mark.slow
def test_messages_sent_while_down_are_loaded_once_even_across_crashes(
    engine: Engine, broker: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = f"seqcast-test/{uuid.uuid4().hex[:10]}"
    cfg = _cfg(prefix)
    assert run_source(engine, cfg) == ([], [])  # first run: creates the persistent session

    publish([*readings(prefix, 0, 30), (f"{prefix}/north/t1", b"{not json")])  # consumer down
    results, _ = run_source(engine, cfg)
    assert sum(r["received"] for r in results) == 61
    assert sum(r["accepted"] for r in results) == 60
    assert all(r["accepted"] + r["rejected"] == r["received"] for r in results)
    assert _rows(engine) == (60, 60)
    assert read_watermark(engine, "plant")["last_topic"].startswith(prefix)
    with engine.connect() as conn:
        reason = conn.execute(text("SELECT reason FROM rejected_rows")).scalar_one()
    assert "payload is not JSON" in reason
    assert run_source(engine, cfg) == ([], [])  # all acknowledged: nothing comes back

    # A crash before the commit: nothing is acknowledged, nothing written.
    publish(readings(prefix, 30, 10))
    write = db.ingest._write_accepted

    def crash(*args: Any) -> Any:
        write(*args)  # the rows are written, not yet committed
        raise RuntimeError("killed before commit")

    monkeypatch.setattr(db.ingest, "_write_accepted", crash)
    with pytest.raises(RuntimeError, match="killed before commit"):
        run_source(engine, cfg)
    assert _rows(engine) == (60, 60)
    monkeypatch.setattr(db.ingest, "_write_accepted", write)

    # A crash after the commit but before the acknowledgement: the broker redelivers.
    def die_after_commit(row: dict[str, Any]) -> None:
        raise RuntimeError("killed after commit")

    with pytest.raises(RuntimeError, match="killed after commit"):
        run_source(engine, cfg, on_result=die_after_commit)
    after_crash = _rows(engine)
    assert after_crash[0] > 60  # the first micro-batch was committed

    results, _ = run_source(engine, cfg)  # redelivered and the rest: each row once
    assert results  # the unacknowledged messages came back...
    assert sum(r["inserted"] for r in results if not r["already_loaded"]) == 0  # ...as no-ops
    assert _rows(engine) == (80, 80)
    assert run_source(engine, cfg) == ([], [])


@pytest.mark.slow
def test_a_long_running_consumer_writes_micro_batches_until_stopped(
    engine: Engine, broker: None
) -> None:
    prefix = f"seqcast-test/{uuid.uuid4().hex[:10]}"
    cfg = _cfg(prefix, value_fields=["temp"])
    run_source(engine, cfg)  # the session: what is published before the consumer subscribes waits
    stop = threading.Event()
    batches: list[dict[str, Any]] = []
    consumer = threading.Thread(
        target=run_source,
        args=(engine, cfg),
        kwargs={"forever": True, "stop": stop, "on_result": batches.append},
    )
    consumer.start()
    try:
        for part in range(3):
            publish(readings(prefix, part * 20, 20))
            time.sleep(0.3)
        wait_until(lambda: _rows(engine)[0] >= 60)
    finally:
        stop.set()
        consumer.join(60)
    assert not consumer.is_alive()
    assert _rows(engine) == (60, 60)
    assert len(batches) >= 3  # micro-batches (at most 25 messages), not one batch at the end
    assert sum(b["received"] for b in batches) == 60


@pytest.mark.slow
def test_a_scheduled_drain_ends_while_messages_keep_coming(engine: Engine, broker: None) -> None:
    prefix = f"seqcast-test/{uuid.uuid4().hex[:10]}"
    cfg = _cfg(prefix, drain_seconds=1.5)
    run_source(engine, cfg)  # the session
    # A message every 0.1 s, well inside idle_seconds, until stopped: only the drain's own
    # limit can end it (a minute of traffic at most, so a drain that never ends fails).
    stop = threading.Event()
    sent: list[tuple[str, bytes]] = []
    publisher = threading.Thread(
        target=publish, args=(readings(prefix, 0, 600), 0.1), kwargs={"stop": stop, "sent": sent}
    )
    publisher.start()
    try:
        assert wait_until(lambda: len(sent) >= 3), "the publisher sent nothing"
        first, _ = run_source(engine, cfg)
        assert publisher.is_alive()  # the drain ended while messages were still coming...
        after = len(sent)
        assert wait_until(lambda: len(sent) >= after + 3)  # ...and more came after it
    finally:
        stop.set()
        publisher.join(120)
    rest: list[dict[str, Any]] = []
    while more := run_source(engine, cfg)[0]:  # each further drain ends once the topic is idle
        rest += more
    n = 2 * len(sent)  # two readings per message
    assert 0 < sum(r["received"] for r in first) < n
    assert sum(r["received"] for r in first + rest) == n
    assert _rows(engine) == (n, n)


def test_an_mqtt_source_can_deliver_covariates(engine: Engine, broker: None) -> None:
    prefix = f"seqcast-test/{uuid.uuid4().hex[:10]}"
    cfg = _cfg(
        prefix,
        declare=None,
        series_id="{t[2]}",  # the site: a group's name
        value_fields=["temp"],
        covariate={"kind": "past_only", "scope": "group", "name": "outdoor_temp"},
    )
    assert run_source(engine, cfg) == ([], [])  # the persistent session
    publish([*readings(prefix, 0, 6), (f"{prefix}/north/t1", b"{not json")])
    results, _ = run_source(engine, cfg)
    assert sum(r["received"] for r in results) == 7
    assert sum(r["rejected"] for r in results) == 1
    assert all(r["accepted"] + r["rejected"] == r["received"] for r in results)
    assert all("(covariates: past_only, group scope" in r["source"] for r in results)

    def stored() -> list[tuple[str, str]]:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT name, scope_key FROM covariates")).all()
        return sorted((str(n), str(k)) for n, k in rows)

    assert stored() == [("outdoor_temp", "north")] * 3 + [("outdoor_temp", "south")] * 3
    with engine.connect() as conn:
        reason = conn.execute(text("SELECT reason FROM rejected_rows")).scalar_one()
        observed = conn.execute(text("SELECT COUNT(*) FROM observations")).scalar_one()
    assert "payload is not JSON" in reason and observed == 0
    assert run_source(engine, cfg) == ([], [])  # acknowledged: nothing comes again
    publish(readings(prefix, 6, 2))
    more, _ = run_source(engine, cfg)
    assert sum(r["inserted"] for r in more) == 2 and len(stored()) == 8


def test_an_unreachable_broker_is_a_clear_error(engine: Engine) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    cfg = _cfg("seqcast-test/x", port=port, connect_timeout_s=2)
    with pytest.raises(SeqcastError, match=f"MQTT broker 127.0.0.1:{port}"):
        run_source(engine, cfg)


@pytest.mark.slow
def test_the_cli_consumer_stops_on_sigterm_and_resumes_where_it_left(
    database_url: str, broker: None, tmp_path: Path
) -> None:
    prefix = f"seqcast-test/{uuid.uuid4().hex[:10]}"
    config = tmp_path / "sources.yaml"
    config.write_text(json.dumps({"sources": [_cfg(prefix).model_dump(exclude_none=True)]}))
    env = {**os.environ, "SEQCAST_DATABASE_URL": database_url}
    cmd = [sys.executable, "-m", "flows.cli", "ingest", "mqtt", "-c", str(config)]
    engine = make_engine(database_url)

    # The session exists from the first connection on; later messages wait for the consumer.
    assert run_source(engine, _cfg(prefix)) == ([], [])

    def consume_until(n_rows: int, publish_now: list[tuple[str, bytes]]) -> str:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            publish(publish_now)  # while the consumer is still starting: kept by the broker
            # A fresh interpreter importing the CLI took over a minute on a saturated 2-core box.
            wait_until(lambda: _rows(engine)[0] >= n_rows or proc.poll() is not None, 300)
        finally:
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, out.decode()
        assert _rows(engine)[0] >= n_rows, f"the consumer loaded too little: {out.decode()}"
        return out.decode()

    try:
        first = consume_until(20, readings(prefix, 0, 10))
        assert "consuming" in first and "stopped after" in first
        publish(readings(prefix, 10, 10))  # while no consumer runs
        second = consume_until(60, readings(prefix, 20, 10))
        assert "inserted" in second
        assert _rows(engine) == (60, 60)
    finally:
        engine.dispose()
