"""Small paho-mqtt helpers for tests."""

from __future__ import annotations

import queue
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.eventually import eventually


def subscribe(client: mqtt.Client, topic: str, *, qos: int = 1, timeout: float = 10) -> None:
    """Subscribe, and return once the broker has acknowledged it (SUBACK): from then on, what
    is published to `topic` reaches this client."""
    acked: set[int] = set()
    client.on_subscribe = lambda c, u, mid, *rest: acked.add(mid)
    result, mid = client.subscribe(topic, qos=qos)
    assert result == mqtt.MQTT_ERR_SUCCESS, result
    eventually(lambda: mid in acked, timeout=timeout, what=f"the SUBACK for {topic}")


def until_control(received: queue.Queue[mqtt.MQTTMessage], control: bytes) -> list[str]:
    """The topics received before the message whose payload is `control`: sent last, on a
    topic the receiver must get, it proves everything sent before it was either delivered by
    now or never will be (the broker keeps one sender's messages in order)."""
    topics: list[str] = []
    while True:
        message = received.get(timeout=10)  # queue.Empty: the control never came
        if message.payload == control:
            return topics
        topics.append(message.topic)


@contextmanager
def connected(
    port: int, username: str, password: str, *, v5: bool = True, host: str = "127.0.0.1"
) -> Iterator[tuple[mqtt.Client, queue.Queue[mqtt.MQTTMessage]]]:
    """A connected client and the queue its received messages land in; fails if refused."""
    client, received, reason = _client(port, username, password, v5=v5, host=host)
    if reason != 0:
        client.loop_stop()
        raise ConnectionRefusedError(f"{username}: {reason}")
    try:
        yield client, received
    finally:
        client.disconnect()
        client.loop_stop()


def connect_reason(
    port: int, username: str, password: str, *, v5: bool = True, host: str = "127.0.0.1"
) -> int:
    """The CONNACK reason (0 = accepted) for these credentials."""
    client, _, reason = _client(port, username, password, v5=v5, host=host)
    client.disconnect()
    client.loop_stop()
    return reason


def _client(
    port: int, username: str, password: str, *, v5: bool, host: str
) -> tuple[mqtt.Client, queue.Queue[mqtt.MQTTMessage], int]:
    protocol = mqtt.MQTTv5 if v5 else mqtt.MQTTv311
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:8]}", protocol=protocol
    )
    client.username_pw_set(username, password)
    received: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    done = threading.Event()
    outcome: list[int] = []

    def on_connect(c: mqtt.Client, u: object, flags: object, rc: object, props: object) -> None:
        outcome.append(int(getattr(rc, "value", rc)))  # type: ignore[call-overload]
        done.set()

    def on_disconnect(c: mqtt.Client, u: object, flags: object, rc: object, props: object) -> None:
        if not done.is_set():
            outcome.append(int(getattr(rc, "value", rc)) or 135)  # type: ignore[call-overload]
            done.set()

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    client.on_message = lambda c, u, m: received.put(m)
    client.connect(host, port, keepalive=30)
    client.loop_start()
    if not done.wait(10):
        outcome.append(-1)
    return client, received, outcome[0]
