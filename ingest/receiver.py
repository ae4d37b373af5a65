"""The MQTT session in a process of its own.

Receiving is CPU work of its own (with `BatchingClient` handing packets straight from its read
buffer, about a twelfth of a core per 10k msgs/s; a stock paho client needs most of a core), so
it gets its own process: it receives, hands batches to the ingest process through a pipe, and
sends the PUBACKs of a batch, in one write, only when the ingest process says the batch is
committed. Acks carry the connection generation: a message delivered on an earlier
connection is not acknowledged (the broker redelivers it, and (device_id, seq) makes that
harmless). With `max_in_hand` messages delivered and not yet committed, it stops reading
until commits make room, so a backlog waits in the broker, not in this pair of processes.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from hub.mqtt import configure
from hub.settings import MqttUrl
from ingest.mqtt_client import BatchingClient

# What crosses the pipe: compact tuples, pickled in batches with the time they were sent,
# which is within a flush interval of when they arrived.
Delivered = tuple[str, bytes, int, int, int]  # topic, payload, mid, qos, generation
Ack = tuple[int, int, int]  # mid, qos, generation
Committed = tuple[int, list[Ack]]  # messages committed (any QoS), the PUBACKs now due
CONNECTED, DISCONNECTED, MESSAGES = "connected", "disconnected", "messages"


@dataclass(frozen=True)
class SessionConfig:
    mqtt: MqttUrl
    client_id: str
    subscription: str
    mqtt_v5: bool
    receive_maximum: int
    flush_interval: float
    max_in_hand: int


def run_receiver(config: SessionConfig, out: Connection, acks: Connection) -> None:
    """Child-process entry point; returns when the ingest process goes away."""
    # Ctrl-C reaches the whole process group; the ingest process decides when this one ends.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    Receiver(config, out, acks).run()


class Receiver:
    def __init__(self, config: SessionConfig, out: Connection, acks: Connection) -> None:
        self.config = config
        self.out = out
        self.acks = acks
        self.generation = 0
        self.inbox: deque[Delivered] = deque()
        self.stopped = threading.Event()
        # Delivered to the ingest process and not yet reported committed.
        self.in_hand = 0
        self.room = threading.Condition()
        self.client = self._make_client()

    def run(self) -> None:
        self._connect()
        threading.Thread(target=self._acknowledge, daemon=True).start()
        parent = os.getppid()
        try:
            while not self.stopped.is_set():
                if os.getppid() != parent:
                    # The ingest process was killed. Staying connected would make this orphan
                    # and the restarted ingest take the session from each other in turn.
                    break
                if not self.inbox:
                    time.sleep(self.config.flush_interval)
                    continue
                batch = [self.inbox.popleft() for _ in range(len(self.inbox))]
                self._send((MESSAGES, (time.time(), batch)))
        finally:
            self._stop()
            self.client.disconnect()
            self.client.loop_stop()

    def _stop(self) -> None:
        self.stopped.set()
        with self.room:
            self.room.notify_all()  # a network thread waiting for room gives up

    def _send(self, item: tuple[str, Any]) -> None:
        try:
            self.out.send(item)
        except (BrokenPipeError, EOFError, OSError):
            self._stop()  # the ingest process is gone; so is our reason to run

    def _acknowledge(self) -> None:
        while not self.stopped.is_set():
            try:
                message: Committed = self.acks.recv()
            except (EOFError, OSError):
                self._stop()
                return
            committed, batch = message
            with self.room:
                self.in_hand -= committed
                self.room.notify_all()
            generation = self.generation
            self.client.ack_many(mid for mid, qos, gen in batch if qos == 1 and gen == generation)

    def _make_client(self) -> BatchingClient:
        cfg = self.config
        client = BatchingClient(
            CallbackAPIVersion.VERSION2,
            client_id=cfg.client_id,
            protocol=mqtt.MQTTv5 if cfg.mqtt_v5 else mqtt.MQTTv311,
            clean_session=None if cfg.mqtt_v5 else False,
            manual_ack=True,
        )
        configure(client, cfg.mqtt)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_delivery = self._on_delivery
        return client

    def _connect(self) -> None:
        cfg = self.config
        properties = None
        if cfg.mqtt_v5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = 7 * 24 * 3600  # keep our queue across restarts
            properties.ReceiveMaximum = cfg.receive_maximum
        self.client.connect_async(
            cfg.mqtt.host,
            cfg.mqtt.port,
            keepalive=30,
            clean_start=False if cfg.mqtt_v5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
            properties=properties,
        )
        self.client.loop_start()

    def _on_connect(
        self, client: mqtt.Client, userdata: object, flags: object, reason: object, props: object
    ) -> None:
        if getattr(reason, "is_failure", False):
            self._send((DISCONNECTED, f"connection refused: {reason}"))
            return
        self.generation += 1
        client.subscribe(self.config.subscription, qos=1)
        self._send((CONNECTED, self.config.subscription))

    def _on_disconnect(
        self, client: mqtt.Client, userdata: object, flags: object, reason: object, props: object
    ) -> None:
        self._send((DISCONNECTED, str(reason)))

    def _on_delivery(self, topic: str, payload: bytes, mid: int, qos: int) -> None:
        # Called on paho's network thread: waiting here stops reading, so the broker, not
        # this process, holds the backlog once the ingest process has enough in hand.
        with self.room:
            while self.in_hand >= self.config.max_in_hand and not self.stopped.is_set():
                self.room.wait(1.0)
            self.in_hand += 1
        self.inbox.append((topic, payload, mid, qos, self.generation))
