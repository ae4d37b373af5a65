"""What every hub MQTT client takes from the broker URL: credentials, TLS, reconnect backoff."""

from __future__ import annotations

import json
import ssl
import threading
import time
import uuid
from collections import deque
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from hub.logs import get_logger
from hub.settings import MqttUrl

log = get_logger(__name__)


def json_payload(body: dict[str, Any]) -> bytes:
    """A message the hub publishes: compact JSON in UTF-8 with Chinese as itself (`张*`, not
    `\\u5f20*`), so that a reader's display, a broker's log and a person can read it."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def configure(client: mqtt.Client, url: MqttUrl) -> None:
    """Set `url`'s credentials and TLS on a client not yet connected; reconnects back off
    up to 30 s."""
    if url.username:
        client.username_pw_set(url.username, url.password)
    if url.tls:
        client.tls_set_context(ssl.create_default_context())
    client.reconnect_delay_set(min_delay=1, max_delay=30)


def started_client(
    url: MqttUrl, *, name: str, mqtt_v5: bool = True
) -> tuple[mqtt.Client, threading.Event]:
    """A publishing client (client id `shaobing-<name>-<random>`) connecting in paho's own
    thread, and the event set once the broker has accepted it."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"shaobing-{name}-{uuid.uuid4().hex[:12]}",
        protocol=mqtt.MQTTv5 if mqtt_v5 else mqtt.MQTTv311,
    )
    configure(client, url)
    accepted = threading.Event()

    def on_connect(client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if rc.is_failure:
            log.warning("MQTT connection refused", client=name, reason=str(rc))
            return
        accepted.set()

    client.on_connect = on_connect
    client.connect_async(url.host, url.port, keepalive=30)
    client.loop_start()
    return client, accepted


class Unacknowledged:
    """QoS 1 messages handed to paho that the broker has not acknowledged yet, oldest first.

    paho queues publishes without limit past its in-flight window and drops what is still
    queued when the client disconnects: a publisher waits here to bound its queue and, before
    it disconnects, to lose nothing.
    """

    def __init__(self) -> None:
        self._messages: deque[mqtt.MQTTMessageInfo] = deque()
        self._lock = threading.Lock()

    def add(self, message: mqtt.MQTTMessageInfo) -> None:
        with self._lock:
            self._forget_acknowledged()
            self._messages.append(message)

    def __len__(self) -> int:
        with self._lock:
            self._forget_acknowledged()
            return len(self._messages)

    def _forget_acknowledged(self) -> None:
        # The broker acknowledges in order, so the acknowledged ones are at the front.
        while self._messages and self._messages[0].is_published():
            self._messages.popleft()

    def wait(
        self, at_most: int, *, stop: threading.Event | None = None, timeout: float | None = None
    ) -> bool:
        """Wait until no more than `at_most` are unacknowledged; False if `stop` was set or
        `timeout` seconds passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        # Polled: `wait_for_publish` refuses a message published while disconnected, which
        # paho still sends once it has reconnected.
        while len(self) > at_most:
            if (stop is not None and stop.is_set()) or (
                deadline is not None and time.monotonic() >= deadline
            ):
                return False
            time.sleep(0.002)
        return True


def close_when_acknowledged(
    client: mqtt.Client, unacked: Unacknowledged, *, timeout: float, name: str
) -> None:
    """Disconnect once the broker has every message (waiting up to `timeout` seconds; what is
    left then is logged), and stop paho's thread."""
    if not unacked.wait(0, timeout=timeout):
        log.warning("MQTT messages not acknowledged at close", client=name, left=len(unacked))
    client.disconnect()
    client.loop_stop()
