"""The MQTT session in a process of its own.

Receiving is CPU work of its own (with `BatchingClient` handing packets straight from its read
buffer, about a twelfth of a core per 10k msgs/s; a stock paho client needs most of a core), so
it gets its own process: it receives, hands batches to the ingest process through a pipe, and
sends the PUBACKs of a batch, in one write, only when the ingest process says the batch is
committed. Acks carry the connection generation: a message delivered on an earlier
connection is not acknowledged (the broker redelivers it, and (device_id, seq, ts) makes that
harmless).

paho is driven through its public hooks for an external loop (`socket()`, `loop_read()`,
`loop_write()`, `loop_misc()`, `want_write()`), from one thread that owns the client. With
`max_in_hand` messages delivered and not yet committed, that thread stops *reading* (it leaves
the socket out of select), so the backlog waits in the broker, while PUBACKs and keepalive
pings still go out. (A pause longer than the keepalive ends in a reconnect: the broker then
redelivers what was not acknowledged, and nothing is lost.)
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
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

from hub.backoff import Backoff
from hub.mqtt import configure
from hub.settings import MqttUrl
from ingest.mqtt_client import BatchingClient

# What crosses the pipe: compact tuples, pickled in batches with the time they were sent,
# which is within a flush interval of when they arrived.
Delivered = tuple[str, bytes, bool, int, int, int]  # topic, payload, retain, mid, qos, generation
Ack = tuple[int, int, int]  # mid, qos, generation
Committed = tuple[int, list[Ack]]  # messages committed (any QoS), the PUBACKs now due
CONNECTED, DISCONNECTED, MESSAGES = "connected", "disconnected", "messages"
KEEPALIVE_S = 30
_SELECT_S = 1.0  # the longest the loop sleeps: keepalive and the parent check run this often

_RECONNECT = Backoff(first_s=1.0, max_s=30.0)  # the broker gone: try again, slower


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
        self.in_hand = 0  # delivered to the ingest process, not yet reported committed
        self._lock = threading.Lock()
        self._due: deque[list[Ack]] = deque()  # committed batches' PUBACKs, to send
        self._ever_connected = False
        # Written to by the other threads to wake the network loop out of select().
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.client = self._make_client()

    # --- the threads ---------------------------------------------------------------------

    def run(self) -> None:
        threading.Thread(target=self._acknowledged, name="acks", daemon=True).start()
        threading.Thread(target=self._forward, name="forward", daemon=True).start()
        try:
            self._network()
        finally:
            self._stop()
            if self.client.socket() is not None:
                self.client.disconnect()
                self.client.loop_write()

    def _network(self) -> None:
        """The one thread that touches the client: connect, read (unless paused), write,
        keepalive, and the PUBACKs the ingest process says are due."""
        parent = os.getppid()
        retries = _RECONNECT.retries()
        while not self.stopped.is_set():
            if os.getppid() != parent:
                # The ingest process was killed. Staying connected would make this orphan
                # and the restarted ingest take the session from each other in turn.
                return
            sock = self.client.socket()
            if sock is None:
                if self._connect():
                    retries.succeeded()
                else:
                    self.stopped.wait(retries.failed())
                continue
            room = not self._full()
            readable: list[Any] = [self._wake_r]
            if room:
                readable.append(sock)
            writable = [sock] if self.client.want_write() else []
            # Bytes already read but left in the buffer when it filled up do not wake select.
            waiting = room and self.client.buffered()
            ready, can_write, _ = select.select(readable, writable, [], 0 if waiting else _SELECT_S)
            if self._wake_r in ready:
                self._drain_wakeups()
            self._send_due_acks()
            if sock in ready or waiting:
                self.client.loop_read()
            if self.client.socket() is not None and (can_write or self.client.want_write()):
                self.client.loop_write()
            if self.client.socket() is not None:
                self.client.loop_misc()

    def _forward(self) -> None:
        """Deliveries to the ingest process, a batch every flush interval."""
        while not self.stopped.is_set():
            if not self.inbox:
                time.sleep(self.config.flush_interval)
                continue
            batch = [self.inbox.popleft() for _ in range(len(self.inbox))]
            self._send((MESSAGES, (time.time(), batch)))

    def _acknowledged(self) -> None:
        """Committed batches from the ingest process: room for more, and PUBACKs due."""
        while not self.stopped.is_set():
            try:
                committed, batch = self.acks.recv()
            except (EOFError, OSError):
                self._stop()
                return
            with self._lock:
                self.in_hand -= committed
                self._due.append(batch)
            self._wake()

    # --- the network thread's work -------------------------------------------------------------

    def _connect(self) -> bool:
        """Connect (or reconnect): True when the CONNECT went out."""
        cfg = self.config
        try:
            if not self._ever_connected:
                properties = None
                if cfg.mqtt_v5:
                    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
                    properties.SessionExpiryInterval = 7 * 24 * 3600  # keep our queue
                    properties.ReceiveMaximum = cfg.receive_maximum
                self.client.connect(
                    cfg.mqtt.host,
                    cfg.mqtt.port,
                    keepalive=KEEPALIVE_S,
                    clean_start=False if cfg.mqtt_v5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
                    properties=properties,
                )
                self._ever_connected = True
            else:
                self.client.reconnect()
            return True
        except OSError as exc:
            self._send((DISCONNECTED, f"cannot connect: {exc}"))
            return False

    def _full(self) -> bool:
        return self.in_hand >= self.config.max_in_hand

    def _send_due_acks(self) -> None:
        with self._lock:
            batches = list(self._due)
            self._due.clear()
        generation = self.generation
        for batch in batches:
            self.client.ack_many(mid for mid, qos, gen in batch if qos == 1 and gen == generation)

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

    def _on_delivery(self, topic: str, payload: bytes, mid: int, qos: int, retain: bool) -> None:
        with self._lock:
            self.in_hand += 1
        self.inbox.append((topic, payload, retain, mid, qos, self.generation))

    # --- plumbing ----------------------------------------------------------------------------

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
        client.paused = self._full
        return client

    def _send(self, item: tuple[str, Any]) -> None:
        try:
            self.out.send(item)
        except (BrokenPipeError, EOFError, OSError):
            self._stop()  # the ingest process is gone; so is our reason to run

    def _wake(self) -> None:
        # A full buffer already holds a wakeup: nothing lost if this one does not fit.
        with contextlib.suppress(BlockingIOError, OSError):
            self._wake_w.send(b"x")

    def _drain_wakeups(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            while self._wake_r.recv(4096):
                pass

    def _stop(self) -> None:
        self.stopped.set()
        self._wake()
