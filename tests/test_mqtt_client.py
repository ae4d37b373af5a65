"""BatchingClient against a real broker: the fast paths deliver what paho's own code would."""

from __future__ import annotations

import queue
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from hub.mqtt import configure
from hub.settings import MqttUrl
from ingest.mqtt_client import BatchingClient

Received = tuple[str, bytes, int, bool, list[tuple[str, str]]]


@contextmanager
def subscriber(
    broker: MqttUrl, topic: str, *, client_id: str | None = None, manual_ack: bool = False
) -> Iterator[tuple[BatchingClient, queue.Queue[Received]]]:
    inbox: queue.Queue[Received] = queue.Queue()
    client_id = client_id or f"test-{uuid.uuid4().hex[:8]}"
    client = BatchingClient(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5,
        manual_ack=manual_ack,
    )
    configure(client, broker)

    def on_message(c: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        user = list(getattr(msg.properties, "UserProperty", []) or [])
        inbox.put((msg.topic, msg.payload, msg.mid, msg.retain, user))

    subscribed = queue.Queue[bool]()
    client.on_message = on_message
    client.on_subscribe = lambda *args: subscribed.put(True)
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = 300
    properties.ReceiveMaximum = 100  # stock mosquitto otherwise stops at 20 unacknowledged
    client.connect(broker.host, broker.port, clean_start=False, properties=properties)
    client.loop_start()
    client.subscribe(topic, qos=1)
    subscribed.get(timeout=10)
    try:
        yield client, inbox
    finally:
        client.disconnect()
        client.loop_stop()


def publish(broker: MqttUrl, messages: list[tuple[str, bytes, Properties | None]]) -> None:
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5
    )
    configure(client, broker)
    client.connect(broker.host, broker.port)
    client.loop_start()
    for topic, payload, properties in messages:
        client.publish(topic, payload, qos=1, properties=properties).wait_for_publish(10)
    client.disconnect()
    client.loop_stop()


def test_plain_and_property_carrying_messages_arrive_intact(mqtt_server: MqttUrl) -> None:
    base = f"test/batching/{uuid.uuid4().hex[:8]}"
    with_props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    with_props.UserProperty = ("firmware", "2.1")
    big = bytes(range(256)) * 400  # spans several 64 KiB socket reads
    sent = [(f"{base}/a", b'{"seq": 1}', None), (f"{base}/b", b"", with_props),
            (f"{base}/c", big, None)]  # fmt: skip
    with subscriber(mqtt_server, f"{base}/#") as (_, inbox):
        publish(mqtt_server, sent)
        got = [inbox.get(timeout=10) for _ in sent]
    assert [(t, p) for t, p, *_ in got] == [(t, p) for t, p, _ in sent]
    assert got[1][4] == [("firmware", "2.1")]  # paho's own decoder took the one with properties
    assert all(mid > 0 for _, _, mid, _, _ in got)


def test_ack_many_acknowledges_so_nothing_is_redelivered(mqtt_server: MqttUrl) -> None:
    base = f"test/batching/{uuid.uuid4().hex[:8]}"
    client_id = f"test-acks-{uuid.uuid4().hex[:8]}"
    with subscriber(mqtt_server, f"{base}/#", client_id=client_id, manual_ack=True) as (c, inbox):
        publish(mqtt_server, [(f"{base}/{i}", str(i).encode(), None) for i in range(50)])
        got = [inbox.get(timeout=10) for _ in range(50)]
        c.ack_many(mid for _, _, mid, _, _ in got[:40])  # the last ten stay unacknowledged
        time.sleep(0.5)
    # Same session again: the broker redelivers exactly what was not acknowledged.
    with subscriber(mqtt_server, f"{base}/#", client_id=client_id, manual_ack=True) as (c, inbox):
        again = []
        deadline = time.monotonic() + 5
        while len(again) < 10 and time.monotonic() < deadline:
            try:
                again.append(inbox.get(timeout=0.5))
            except queue.Empty:
                continue
        c.ack_many(mid for _, _, mid, _, _ in again)
        with pytest.raises(queue.Empty):
            inbox.get(timeout=0.5)
    assert sorted(int(p) for _, p, *_ in again) == list(range(40, 50))
