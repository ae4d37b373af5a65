"""Helpers for ingest tests: run the real consumer, publish real MQTT, wait for rows."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from hub.settings import MqttUrl
from hub.signals import Signal, SignalBus, Subscriber
from ingest.consumer import ConsumerConfig, MqttConsumer
from ingest.pipeline import Pipeline
from ingest.registry_view import RegistryView

SECRET = b"test-secret-key"


class Collected:
    """Signals a bus delivered, for assertions."""

    def __init__(self) -> None:
        self.signals: list[Signal] = []
        self._lock = threading.Lock()

    async def __call__(self, signals: Sequence[Signal]) -> None:
        with self._lock:
            self.signals.extend(signals)

    def kinds(self) -> list[str]:
        with self._lock:
            return [s.kind for s in self.signals]


@contextmanager
def running_consumer(
    database_url: str, broker: MqttUrl, *also: Subscriber, **config: Any
) -> Iterator[Collected]:
    """The real MqttConsumer in a thread of its own; yields once it is subscribed.
    `config`: ConsumerConfig fields to override."""
    collected = Collected()
    bus = SignalBus()
    bus.subscribe(collected)
    for subscriber in also:
        bus.subscribe(subscriber)
    settings = ConsumerConfig(
        mqtt=broker,
        database_url=database_url,
        client_id=f"test-ingest-{uuid.uuid4().hex[:8]}",
        **config,
    )
    consumer = MqttConsumer(settings, Pipeline(RegistryView(), SECRET, bus))
    loop = asyncio.new_event_loop()
    task: asyncio.Task[None] | None = None

    def run() -> None:
        nonlocal task
        asyncio.set_event_loop(loop)
        task = loop.create_task(consumer.run())
        with contextlib.suppress(asyncio.CancelledError):
            loop.run_until_complete(task)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not consumer.connected.is_set():
        assert time.monotonic() < deadline, "consumer did not connect"
        time.sleep(0.05)
    time.sleep(0.3)  # the SUBSCRIBE goes out right after CONNACK
    try:
        yield collected
    finally:
        assert task is not None
        loop.call_soon_threadsafe(task.cancel)
        thread.join(timeout=15)


class Publisher:
    """A QoS 1 publisher that waits for every PUBACK."""

    def __init__(self, broker: MqttUrl, *, in_flight: int = 20) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"test-pub-{uuid.uuid4().hex[:8]}"
        )
        self.client.max_inflight_messages_set(in_flight)
        if broker.username:
            self.client.username_pw_set(broker.username, broker.password)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def send(
        self, topic: str, payload: bytes | dict[str, Any] | list[Any], *, retain: bool = False
    ) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.client.publish(topic, body, qos=1, retain=retain).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait_for(
    database_url: str, query: str, expected: Callable[[Any], bool], timeout: float = 20
) -> Any:
    """Poll a scalar query until `expected(value)` holds; returns the value."""
    deadline = time.monotonic() + timeout
    value: Any = None
    with psycopg.connect(database_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(query).fetchone()  # type: ignore[arg-type]
            value = row[0] if row else None
            if expected(value):
                return value
            time.sleep(0.1)
    raise AssertionError(f"{query} gave {value!r}")
