"""The hub's voice to its devices: QoS 1 publishes on `sb/{area}/{device}/cmd`, the topic the
broker lets each device read (its own only). Commands and ID-card verdicts go out here."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from paho.mqtt.enums import MQTTErrorCode

from hub.mqtt import Unacknowledged, close_when_acknowledged, json_payload, started_client
from hub.settings import MqttUrl


def cmd_topic(area: str, device_id: str) -> str:
    return f"sb/{area}/{device_id}/cmd"


class Downlink:
    """One paho client, reconnecting by itself; `send` returns once the broker has the
    message (PUBACK) or says why not."""

    def __init__(self, url: MqttUrl, *, mqtt_v5: bool = True) -> None:
        self._client, self._connected = started_client(url, name="downlink", mqtt_v5=mqtt_v5)
        self._unacked = Unacknowledged()

    @property
    def connected(self) -> bool:
        return self._client.is_connected()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def post(self, area: str, device_id: str, body: dict[str, Any]) -> bool:
        """Publish at QoS 1 without waiting: paho sends it, and again after a reconnect.
        False only when paho refused it outright (its queue is gone)."""
        info = self._client.publish(cmd_topic(area, device_id), json_payload(body), qos=1)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            return False
        self._unacked.add(info)
        return True

    async def send(
        self, area: str, device_id: str, body: dict[str, Any], *, ack_within: float = 5.0
    ) -> bool:
        """Publish at QoS 1 and wait for the broker's acknowledgement: True once it has it.
        False when not connected or not acknowledged within `ack_within` seconds (paho may
        still deliver it after a reconnect: receivers tell repeats apart by its own id)."""
        if not self._client.is_connected():
            return False
        info = self._client.publish(cmd_topic(area, device_id), json_payload(body), qos=1)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return False
        deadline = time.monotonic() + ack_within
        while not info.is_published():
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.001)
        return True

    def close(self, wait_s: float = 2.0) -> None:
        """Disconnect once the broker has what was posted (waiting up to `wait_s`)."""
        close_when_acknowledged(self._client, self._unacked, timeout=wait_s, name="downlink")
