"""MQTT source: JSON sensor messages from a topic filter, in micro-batches, never lost.

The consumer uses a fixed client id with a persistent session (``clean_session=False``) and
QoS 1, so the broker keeps messages published while it is down. Messages are acknowledged
by hand, only after the micro-batch holding them is committed (rows and watermark in one
transaction). A crash between commit and acknowledgement makes the broker redeliver: the
identical batch is recognised by its content hash, or its rows upsert to nothing, so
nothing is lost and nothing is duplicated.

A payload is a JSON object ``{"ts": ..., "temperature": 21.5, "humidity": 40}`` (or a list
of them); each reading becomes one row whose series id comes from the ``series_id``
template over the topic's segments ``{t[0]}``, ``{t[1]}``..., ``{topic}`` and ``{field}``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import queue
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from db.watermarks import WatermarkUpdate
from flows.errors import SeqcastError
from flows.sources.base import SourceItems, SourceLoad, format_ts, frame_sha256, rows_frame
from flows.sources.config import MqttSource


def message_rows(cfg: MqttSource, topic: str, payload: bytes) -> list[dict[str, Any]]:
    """The rows of one message; a payload that cannot be read becomes one row with the reason."""

    def bad(reason: str, series_id: str = "") -> list[dict[str, Any]]:
        text = payload[:80].decode("utf-8", errors="replace")
        return [{"series_id": series_id, "ts": "", "value": text, "read_error": reason}]

    try:
        body = json.loads(payload)
    except (UnicodeDecodeError, ValueError) as exc:
        return bad(f"topic {topic}: payload is not JSON ({exc})")
    samples = body if isinstance(body, list) else [body]
    segments = topic.split("/")
    rows: list[dict[str, Any]] = []
    for sample in samples:
        if not isinstance(sample, dict):
            rows += bad(f"topic {topic}: expected a JSON object, got {type(sample).__name__}")
            continue
        if cfg.timestamp_field not in sample:
            rows += bad(f"topic {topic}: no timestamp field {cfg.timestamp_field!r}")
            continue
        ts = format_ts(sample[cfg.timestamp_field], cfg.timestamp_unit)
        fields = cfg.value_fields or [
            k
            for k, v in sample.items()
            if k != cfg.timestamp_field and isinstance(v, int | float) and not isinstance(v, bool)
        ]
        if not fields:
            rows += bad(f"topic {topic}: no numeric reading in the message")
        for field in fields:
            try:
                sid = cfg.series_id.format(t=segments, topic=topic, field=field)
            except (IndexError, KeyError) as exc:
                rows += bad(f"topic {topic}: series_id template {cfg.series_id!r} failed ({exc})")
                continue
            if field not in sample:
                rows += bad(f"topic {topic}: no reading {field!r}", sid)
                continue
            value = sample[field]
            rows.append(
                {
                    "series_id": sid,
                    "ts": ts,
                    "value": "" if value is None else str(value),
                    "read_error": "",
                }
            )
    return rows


class MqttConsumer:
    """A connected persistent-session subscriber that hands over messages in arrival order."""

    def __init__(self, cfg: MqttSource) -> None:
        self.cfg = cfg
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.connected = threading.Event()
        self.refused = ""
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=cfg.session_id,
            clean_session=False,
            manual_ack=True,
        )
        if cfg.username_env:
            self.client.username_pw_set(
                os.environ.get(cfg.username_env, ""),
                os.environ.get(cfg.password_env or "") or None,
            )
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda _c, _u, msg: self.messages.put(msg)

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self.refused = str(reason)
            return
        # Subscribing again on a resumed session is harmless and covers a broker that lost it.
        client.subscribe(self.cfg.topic, qos=self.cfg.qos)
        self.connected.set()

    def __enter__(self) -> MqttConsumer:
        where = f"{self.cfg.host}:{self.cfg.port}"
        try:
            self.client.connect(self.cfg.host, self.cfg.port, keepalive=30)
        except OSError as exc:
            raise SeqcastError(f"source {self.cfg.name}: MQTT broker {where}: {exc}") from None
        self.client.loop_start()
        if not self.connected.wait(self.cfg.connect_timeout_s):
            self.__exit__()
            why = self.refused or f"no answer in {self.cfg.connect_timeout_s:g} s"
            raise SeqcastError(f"source {self.cfg.name}: MQTT broker {where} refused: {why}")
        return self

    def __exit__(self, *_exc: object) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def next_batch(self, wait_s: float) -> list[mqtt.MQTTMessage]:
        """Up to batch_size messages: waits ``wait_s`` for the first, then batch_seconds at most."""
        try:
            batch = [self.messages.get(timeout=wait_s)]
        except queue.Empty:
            return []
        deadline = time.monotonic() + self.cfg.batch_seconds
        while len(batch) < self.cfg.batch_size:
            # A short lull ends the batch early: the broker holds back more than its in-flight
            # window of unacknowledged messages until these are acknowledged.
            left = min(deadline - time.monotonic(), 0.2)
            if left <= 0:
                break
            try:
                batch.append(self.messages.get(timeout=left))
            except queue.Empty:
                break
        return batch

    def ack(self, batch: list[mqtt.MQTTMessage]) -> None:
        for msg in batch:  # in arrival order, as MQTT requires
            self.client.ack(msg.mid, msg.qos)


def mqtt_loads(
    cfg: MqttSource, forever: bool = False, stop: threading.Event | None = None
) -> SourceItems:
    """Micro-batches until the topic is idle for idle_seconds or drain_seconds have passed.

    With ``forever``, until ``stop`` is set instead. Messages left over wait in the session.
    """
    stop = stop or threading.Event()
    until = time.monotonic() + cfg.drain_seconds
    with MqttConsumer(cfg) as consumer:
        while not stop.is_set() and (forever or time.monotonic() < until):
            batch = consumer.next_batch(wait_s=cfg.idle_seconds if not forever else 0.5)
            if not batch:
                if forever:
                    continue
                return
            rows: list[dict[str, Any]] = []
            for msg in batch:
                rows += message_rows(cfg, msg.topic, msg.payload)
            frame = rows_frame(rows)
            mark = WatermarkUpdate(
                cfg.name,
                {
                    "last_batch_at": dt.datetime.now(dt.UTC).isoformat(),
                    "last_batch_messages": len(batch),
                    "last_topic": batch[-1].topic,
                },
            )
            yield SourceLoad(f"mqtt:{cfg.name}", frame_sha256(frame), [frame], mark)
            consumer.ack(batch)  # reached only after the runner committed the load
