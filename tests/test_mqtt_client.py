"""BatchingClient against a real broker: the fast paths deliver what paho's own code would."""

from __future__ import annotations

import queue
import shutil
import ssl
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bench.ingest import start_mosquitto_with_tls
from hub.mqtt import configure
from hub.settings import MqttUrl
from ingest.mqtt_client import BatchingClient, BufferedSocket, Delivery

Received = tuple[str, bytes, int, bool, list[tuple[str, str]]]


class CountingClient(BatchingClient):
    """Counts the messages the fast path delivered, to check that it is the one at work."""

    fast = 0

    def _deliver_buffered(self, sock: BufferedSocket, deliver: Delivery) -> int:
        delivered = super()._deliver_buffered(sock, deliver)
        self.fast += delivered
        return delivered


@contextmanager
def subscriber(
    broker: MqttUrl,
    topic: str,
    *,
    client_id: str | None = None,
    manual_ack: bool = False,
    deliver: bool = False,
    protocol: mqtt.MQTTProtocolVersion = mqtt.MQTTv5,
    tls: ssl.SSLContext | None = None,
) -> Iterator[tuple[CountingClient, queue.Queue[Received]]]:
    """A BatchingClient subscribed to `topic`; `deliver` uses on_delivery (no properties
    seen) instead of on_message; `tls` connects with that context."""
    inbox: queue.Queue[Received] = queue.Queue()
    client_id = client_id or f"test-{uuid.uuid4().hex[:8]}"
    v5 = protocol == mqtt.MQTTv5
    client = CountingClient(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=protocol,
        manual_ack=manual_ack,
        clean_session=None if v5 else False,
    )
    if tls is None:
        configure(client, broker)
    else:
        client.tls_set_context(tls)

    def on_message(c: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        user = list(getattr(msg.properties, "UserProperty", []) or [])
        inbox.put((msg.topic, msg.payload, msg.mid, msg.retain, user))

    def on_delivery(topic: str, payload: bytes, mid: int, qos: int, retain: bool) -> None:
        inbox.put((topic, payload, mid, retain, []))

    subscribed = queue.Queue[bool]()
    if deliver:
        client.on_delivery = on_delivery
    else:
        client.on_message = on_message
    client.on_subscribe = lambda *args: subscribed.put(True)
    properties = None
    if v5:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = 300
        properties.ReceiveMaximum = 100  # stock mosquitto otherwise stops at 20 unacknowledged
    client.connect(
        broker.host,
        broker.port,
        clean_start=False if v5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
        properties=properties,
    )
    client.loop_start()
    client.subscribe(topic, qos=1)
    subscribed.get(timeout=10)
    try:
        yield client, inbox
    finally:
        client.disconnect()
        client.loop_stop()


def publish(broker: MqttUrl, messages: list[tuple[str, bytes, Properties | None]]) -> None:
    """Publish at QoS 1 without waiting for each PUBACK, so the messages reach the subscriber
    back to back, many to a socket read."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5
    )
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    configure(client, broker)
    client.connect(broker.host, broker.port)
    client.loop_start()
    infos = [client.publish(t, p, qos=1, properties=props) for t, p, props in messages]
    for info in infos:
        info.wait_for_publish(30)
    client.disconnect()
    client.loop_stop()


@pytest.mark.parametrize("deliver", [False, True], ids=["on_message", "on_delivery"])
def test_plain_and_property_carrying_messages_arrive_intact(
    mqtt_server: MqttUrl, deliver: bool
) -> None:
    base = f"test/batching/{uuid.uuid4().hex[:8]}"
    with_props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    with_props.UserProperty = ("firmware", "2.1")
    big = bytes(range(256)) * 400  # spans several 64 KiB socket reads
    sent = [(f"{base}/a", b'{"seq": 1}', None), (f"{base}/b", b"", with_props),
            (f"{base}/c", big, None), (f"{base}/d/é", b"x", None)]  # fmt: skip
    with subscriber(mqtt_server, f"{base}/#", deliver=deliver) as (_, inbox):
        publish(mqtt_server, sent)
        got = [inbox.get(timeout=10) for _ in sent]
    assert [(t, p) for t, p, *_ in got] == [(t, p) for t, p, _ in sent]
    if not deliver:  # paho's own decoder took the one with properties
        assert got[1][4] == [("firmware", "2.1")]
    assert all(mid > 0 for _, _, mid, _, _ in got)


@pytest.mark.parametrize("protocol", [mqtt.MQTTv5, mqtt.MQTTv311], ids=["v5", "v3.1.1"])
def test_a_burst_is_delivered_whole_and_in_order(
    mqtt_server: MqttUrl, protocol: mqtt.MQTTProtocolVersion
) -> None:
    """Messages arrive many to a read, some cut by the read's end and some with properties:
    the fast path and paho's code take turns and nothing is lost or reordered. (900 of up to
    3 KB: the shared test broker queues at most 1,000 per client and drops the rest.)"""
    assert_burst_arrives(mqtt_server, mqtt_server, protocol)


@pytest.fixture(scope="module")
def tls_broker() -> Iterator[tuple[MqttUrl, MqttUrl, Path]]:
    """A mosquitto with a plain and a TLS listener (self-signed certificate for 127.0.0.1):
    (plain URL, TLS URL, certificate)."""
    if shutil.which("openssl") is None or shutil.which("mosquitto") is None:
        pytest.skip("the TLS test needs the openssl and mosquitto programs")
    with ExitStack() as stack:
        yield start_mosquitto_with_tls(stack)  # the benches' broker, so both test the same


def test_a_burst_over_tls_is_delivered_whole_and_in_order(
    tls_broker: tuple[MqttUrl, MqttUrl, Path],
) -> None:
    """mosquitto sends a TLS record per packet and a TLS read returns one record: the buffer
    must gather the readable records for the fast path to see many packets at once."""
    plain, secure, cert = tls_broker
    assert_burst_arrives(secure, plain, mqtt.MQTTv5, ssl.create_default_context(cafile=cert))


def assert_burst_arrives(
    receive: MqttUrl,
    send: MqttUrl,
    protocol: mqtt.MQTTProtocolVersion,
    tls: ssl.SSLContext | None = None,
) -> None:
    base = f"test/batching/{uuid.uuid4().hex[:8]}"
    with_props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    with_props.UserProperty = ("k", "v")
    sent = [
        (f"{base}/{i % 7}", f'{{"seq": {i}, "pad": "{"x" * (i * 37 % 3000)}"}}'.encode(),
         with_props if i % 97 == 0 else None)
        for i in range(900)
    ]  # fmt: skip
    with subscriber(receive, f"{base}/#", deliver=True, protocol=protocol, tls=tls) as (
        client,
        inbox,
    ):
        publish(send, sent)
        got = [inbox.get(timeout=10) for _ in sent]
        with pytest.raises(queue.Empty):  # acknowledged as they came: nothing redelivered
            inbox.get(timeout=0.5)
    assert [(t, p) for t, p, *_ in got] == [(t, p) for t, p, _ in sent]
    assert client.fast > len(sent) // 2  # most skipped paho's per-packet path


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
