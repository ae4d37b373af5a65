"""Our QoS 1 publishers against a real broker: a bounded queue, and nothing lost at close."""

from __future__ import annotations

import json
import queue
import time
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from hub.mqtt import Unacknowledged, configure
from hub.settings import MqttUrl
from ingest.downlink import Downlink
from tests.test_mqtt_client import Received, subscriber
from vision.publisher import Publisher

COUNT = 3000


# Against `queueing_broker`: a stock mosquitto keeps 1,000 messages for a subscriber and drops
# the rest, and these tests are about what the publisher loses.
def assert_all_arrive(inbox: queue.Queue[Received], timeout: float = 30) -> None:
    payloads: set[bytes] = set()
    deadline = time.monotonic() + timeout
    while len(payloads) < COUNT and time.monotonic() < deadline:
        try:
            payloads.add(inbox.get(timeout=0.5)[1])
        except queue.Empty:
            continue
    assert len(payloads) == COUNT, f"{len(payloads)} of {COUNT} arrived"


def test_waiting_bounds_the_queue_and_loses_nothing_at_disconnect(queueing_broker: MqttUrl) -> None:
    topic = f"test/publishing/{uuid.uuid4().hex[:8]}"
    with subscriber(queueing_broker, topic) as (_, inbox):
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:8]}")
        configure(client, queueing_broker)
        client.max_inflight_messages_set(20)
        client.connect(queueing_broker.host, queueing_broker.port)
        client.loop_start()
        unacked = Unacknowledged()
        most = 0
        for i in range(COUNT):
            unacked.add(client.publish(topic, f"{i}".encode(), qos=1))
            most = max(most, len(unacked))
            assert unacked.wait(100, timeout=30)
        assert 20 < most <= 101  # paho queued past its window, and the wait bounded it
        assert unacked.wait(0, timeout=30)
        client.disconnect()
        client.loop_stop()
        assert_all_arrive(inbox)


def test_vision_publisher_close_delivers_everything_queued(queueing_broker: MqttUrl) -> None:
    area = f"9{uuid.uuid4().int % 10**11:011d}"  # a 12-digit code of its own
    with subscriber(queueing_broker, f"sb/{area}/+/+") as (_, inbox):
        publisher = Publisher(queueing_broker)
        assert publisher.wait_connected(10)
        for i in range(COUNT):  # far past paho's default window of 20 in flight
            publisher.publish(area, "CAM-1", "telemetry", {"seq": i})
        publisher.close(timeout=30)
        assert_all_arrive(inbox)


def test_what_the_hub_publishes_keeps_chinese_readable(mqtt_server: MqttUrl) -> None:
    """Camera events and commands carry Chinese as UTF-8, not as `\\uXXXX` escapes."""
    area = f"9{uuid.uuid4().int % 10**11:011d}"
    event = {"type": "line_crossing", "zone": "南门 闸机", "direction": "进", "count": 3}
    with subscriber(mqtt_server, f"sb/{area}/+/+") as (_, inbox):
        publisher = Publisher(mqtt_server)
        assert publisher.wait_connected(10)
        publisher.publish(area, "CAM-1", "event", event)
        publisher.close(timeout=10)
        downlink = Downlink(mqtt_server)
        assert downlink.wait_connected(10)
        assert downlink.post(area, "RD-1", {"type": "id_verdict", "message": "请联系社区民警"})
        downlink.close()
        payloads = {inbox.get(timeout=10)[1] for _ in range(2)}
    assert "南门 闸机".encode() in b"".join(payloads) and "进".encode() in b"".join(payloads)
    assert "请联系社区民警".encode() in b"".join(payloads)
    assert all(b"\\u" not in p for p in payloads)
    assert {json.loads(p).get("zone") for p in payloads} == {"南门 闸机", None}
