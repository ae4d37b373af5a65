"""MQTT publishing on the cameras' behalf (design §2), at QoS 1 through a resilient client."""

from __future__ import annotations

import threading
import time
from typing import Any

import paho.mqtt.client as mqtt

from hub.mqtt import Unacknowledged, close_when_acknowledged, json_payload, started_client
from hub.settings import MqttUrl


class Publisher:
    """Publishes camera events, telemetry and status; paho reconnects and resends QoS 1."""

    def __init__(self, url: MqttUrl, *, mqtt_v5: bool = True) -> None:
        self._client, self._connected = started_client(url, name="vision", mqtt_v5=mqtt_v5)
        self._unacked = Unacknowledged()
        self._seq_lock = threading.Lock()
        self._last_seq = 0

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def next_seq(self) -> int:
        """Microseconds since the epoch, strictly rising: unique across restarts and workers."""
        with self._seq_lock:
            self._last_seq = max(self._last_seq + 1, time.time_ns() // 1000)
            return self._last_seq

    def publish(
        self, area: str, camera_id: str, channel: str, body: dict[str, Any], *, retain: bool = False
    ) -> mqtt.MQTTMessageInfo:
        topic = f"sb/{area}/{camera_id}/{channel}"
        message = self._client.publish(topic, json_payload(body), qos=1, retain=retain)
        self._unacked.add(message)
        return message

    def close(self, timeout: float = 5.0) -> None:
        """Wait (up to `timeout`) until the broker has every message, then disconnect."""
        close_when_acknowledged(self._client, self._unacked, timeout=timeout, name="vision")
