"""The MQTT front door: QoS 1, a persistent session, acknowledgement only after commit.

The MQTT session runs in a child process (`ingest.receiver`); this process decodes and commits
batches, then sends the acknowledgements back. A message that was not acknowledged before a
crash or a reconnect is redelivered by the broker and deduplicated by (device_id, seq).
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import DictRow

from hub.db import connect
from hub.logs import get_logger
from hub.settings import MqttUrl
from ingest import metrics
from ingest.decode import Message
from ingest.health import HealthPolicy, sweep
from ingest.pipeline import Decoded, Pipeline
from ingest.receiver import CONNECTED, MESSAGES, Delivered, SessionConfig, run_receiver
from ingest.store import Turn

log = get_logger(__name__)
UPLINKS = "sb/+/+/+"
SHARED_GROUP = "sb-ingest"


@dataclass(frozen=True)
class ConsumerConfig:
    mqtt: MqttUrl
    database_url: str
    client_id: str = "shaobing-ingest"
    shared: bool = False
    mqtt_v5: bool = True
    max_batch: int = 2000
    # Telemetry batches written at once, each on its own connection: the database works on
    # one batch's readings while the previous one updates device state and commits.
    telemetry_writers: int = 2
    flush_interval: float = 0.005
    health_interval: float = 10.0
    receive_maximum: int = 8000
    # Messages received but not yet committed, at most: past it the receiver stops reading
    # and the broker keeps the rest. (mosquitto 2.0 has been seen sending far beyond the
    # Receive Maximum during a backlog, which without this grew the process by 300k messages.)
    max_in_hand: int = 50_000

    @property
    def subscription(self) -> str:
        return f"$share/{SHARED_GROUP}/{UPLINKS}" if self.shared else UPLINKS


# What waits in a lane: (arrival number, receive time, delivery as the receiver sent it). Plain
# tuples of plain values, which the garbage collector stops tracking once it has seen them:
# tens of thousands wait here under load, and every collection would walk them again.
_Waiting = tuple[int, datetime, Delivered]


@dataclass
class _Lane:
    queue: deque[_Waiting] = field(default_factory=deque)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)


class AckSequencer:
    """Releases acknowledgements in arrival order (as MQTT requires), whichever lane
    committed its messages first."""

    def __init__(self) -> None:
        self._next = 0  # arrival number of the next message
        self._first_unacked = 0
        self._waiting: dict[int, tuple[int, int, int]] = {}  # order → (mid, qos, generation)
        self._done: set[int] = set()

    def __len__(self) -> int:
        """Messages arrived and not yet committed."""
        return len(self._waiting)

    def arrived(self, ack: tuple[int, int, int]) -> int:
        """Register a message by its (mid, qos, generation); returns its arrival number."""
        order = self._next
        self._next += 1
        self._waiting[order] = ack
        return order

    def committed(self, orders: Iterable[int]) -> list[tuple[int, int, int]]:
        """Mark messages committed; returns the (mid, qos, generation) now free to ack."""
        self._done.update(orders)
        ready = []
        while self._first_unacked in self._done:
            self._done.discard(self._first_unacked)
            ack = self._waiting.pop(self._first_unacked)
            if ack[1] > 0:  # QoS 0 is not acknowledged
                ready.append(ack)
            self._first_unacked += 1
        return ready


def _message(waiting: _Waiting) -> tuple[int, Message]:
    order, received_at, (topic, payload, mid, qos, generation) = waiting
    return order, Message(topic, payload, received_at, mid, qos, generation)


class ReceiverGone(RuntimeError):
    """The child process holding the MQTT session died; unacknowledged messages will be
    redelivered to the next one."""


class MqttConsumer:
    """Runs until cancelled: MQTT session (child process), batch writer, health sweeps."""

    def __init__(
        self, config: ConsumerConfig, pipeline: Pipeline, health: HealthPolicy | None = None
    ) -> None:
        self.config = config
        self.pipeline = pipeline
        self.health = health or HealthPolicy()
        # Two lanes, so an alarm never waits behind a telemetry batch already being written.
        self._lanes = {"events": _Lane(), "telemetry": _Lane()}
        self._acks = AckSequencer()
        self.connected = asyncio.Event()
        metrics.IN_HAND.set_function(lambda: len(self._acks))
        self._stopping = False
        self._receiver_gone = False

    async def run(self) -> None:
        conn = await self._connect_db()
        await self.pipeline.registry.load(conn)
        await conn.commit()
        child, messages, acks = self._start_receiver()
        loop = asyncio.get_running_loop()
        loop.add_reader(messages.fileno(), self._on_pipe, messages)
        tasks = [
            asyncio.create_task(self.pipeline.registry.follow(self.config.database_url)),
            asyncio.create_task(self._health_loop()),
        ]
        try:
            await self._drain_loop(conn, acks)
        finally:
            self._stopping = True
            loop.remove_reader(messages.fileno())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            messages.close()
            acks.close()
            child.join(timeout=5)
            if child.is_alive():
                child.terminate()
            await conn.close()

    def _start_receiver(self) -> tuple[BaseProcess, Connection, Connection]:
        cfg = self.config
        session = SessionConfig(
            mqtt=cfg.mqtt,
            client_id=cfg.client_id,
            subscription=cfg.subscription,
            mqtt_v5=cfg.mqtt_v5,
            receive_maximum=cfg.receive_maximum,
            flush_interval=cfg.flush_interval,
            max_in_hand=cfg.max_in_hand,
        )
        ctx = mp.get_context("spawn")  # this process has threads; fork would copy their locks
        messages_in, messages_out = ctx.Pipe(duplex=False)  # (receiving end, sending end)
        acks_in, acks_out = ctx.Pipe(duplex=False)
        child = ctx.Process(
            target=run_receiver, args=(session, messages_out, acks_in), name="mqtt-receiver",
            daemon=True,
        )  # fmt: skip
        child.start()
        messages_out.close()
        acks_in.close()
        return child, messages_in, acks_out

    def _on_pipe(self, pipe: Connection) -> None:
        try:
            kind, body = pipe.recv()
        except (EOFError, OSError):
            asyncio.get_running_loop().remove_reader(pipe.fileno())
            self._receiver_gone = True
            for lane in self._lanes.values():
                lane.arrived.set()
            return
        if kind == MESSAGES:
            epoch, delivered = body
            received_at = datetime.fromtimestamp(epoch, UTC)
            events, telemetry = self._lanes["events"], self._lanes["telemetry"]
            arrived = self._acks.arrived
            for delivery in delivered:  # (topic, payload, mid, qos, generation)
                lane = events if delivery[0].endswith("/event") else telemetry
                lane.queue.append((arrived(delivery[2:]), received_at, delivery))
            for lane in (events, telemetry):
                if lane.queue:
                    lane.arrived.set()
        elif kind == CONNECTED:
            log.info("MQTT connected", subscription=body)
            self.connected.set()
        else:
            log.warning("MQTT disconnected; reconnecting", reason=body)
            self.connected.clear()

    async def _connect_db(self) -> AsyncConnection[DictRow]:
        delay = 0.5
        while True:
            try:
                conn = await connect(self.config.database_url)
                # A lock wait that involves a batch waiting for its turn (which PostgreSQL
                # cannot see) ends in an error, and the batch is retried, instead of a hang.
                await conn.execute("SET lock_timeout = '10s'")
                await conn.commit()
                return conn
            except psycopg.OperationalError as exc:
                log.warning("database unavailable; retrying", error=str(exc), delay=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)

    async def _drain_loop(self, lookups: AsyncConnection[DictRow], acks: Connection) -> None:
        events = [await self._connect_db()]
        telemetry = [await self._connect_db() for _ in range(self.config.telemetry_writers)]
        try:
            await asyncio.gather(
                self._drain(self._lanes["events"], lookups, events, acks),
                self._drain(self._lanes["telemetry"], lookups, telemetry, acks),
            )
        finally:
            for conn in events + telemetry:
                await conn.close()

    async def _drain(
        self,
        lane: _Lane,
        lookups: AsyncConnection[DictRow],
        writers: list[AsyncConnection[DictRow]],
        acks: Connection,
    ) -> None:
        """Write the lane's batches, up to one per writer connection at a time, decoding the
        next batch meanwhile. Each batch's order-dependent part (device state) waits until
        the batch before it has committed, so state still moves in arrival order."""
        idle: asyncio.Queue[AsyncConnection[DictRow]] = asyncio.Queue()
        for conn in writers:
            idle.put_nowait(conn)
        previous: asyncio.Future[None] | None = None
        writing: set[asyncio.Task[None]] = set()
        # (device_id, seq) keys of batches not yet committed. A batch that shares one with
        # them is written only after they commit: otherwise it could take that key's row lock
        # in `uplinks` first and wait for its turn while the earlier batch waits for the lock.
        claimed: list[tuple[set[tuple[str, int]], asyncio.Future[None]]] = []

        def finished(task: asyncio.Task[None]) -> None:
            if task.cancelled() or task.exception() is None:
                writing.discard(task)
            else:
                lane.arrived.set()  # wake the loop to raise it

        try:
            while True:
                await self._wait_for(lane, writing)
                self._raise_failed(writing)
                count = min(len(lane.queue), self.config.max_batch)
                batch = [_message(lane.queue.popleft()) for _ in range(count)]
                decoded = await self.pipeline.decode(lookups, [message for _, message in batch])
                keys = decoded.keys()
                claimed = [(k, done) for k, done in claimed if not done.done()]
                serial = any(keys & earlier for earlier, _ in claimed)
                conn = await idle.get()
                committed = asyncio.get_running_loop().create_future()
                claimed.append((keys, committed))
                task = asyncio.create_task(
                    self._write(conn, batch, decoded, previous, committed, idle, acks, serial)
                )
                writing.add(task)
                task.add_done_callback(finished)
                previous = committed
        finally:
            for task in writing:
                task.cancel()
            await asyncio.gather(*writing, return_exceptions=True)

    async def _wait_for(self, lane: _Lane, writing: set[asyncio.Task[None]]) -> None:
        while not lane.queue:
            self._raise_failed(writing)
            if self._receiver_gone and not self._stopping:
                raise ReceiverGone("the MQTT receiver process exited")
            lane.arrived.clear()
            await lane.arrived.wait()

    @staticmethod
    def _raise_failed(writing: set[asyncio.Task[None]]) -> None:
        """A write that failed for good (not a lost connection: that is retried) takes the
        consumer down, as it would have before writes overlapped."""
        for task in [t for t in writing if t.done() and not t.cancelled()]:
            task.result()

    async def _write(
        self,
        conn: AsyncConnection[DictRow],
        batch: list[tuple[int, Message]],
        decoded: Decoded,
        previous: asyncio.Future[None] | None,
        committed: asyncio.Future[None],
        idle: asyncio.Queue[AsyncConnection[DictRow]],
        acks: Connection,
        serial: bool,
    ) -> None:
        async def turn() -> None:
            if previous is not None:
                await asyncio.shield(previous)

        try:
            if serial:
                await turn()
            conn = await self._commit(conn, decoded, turn)
        except BaseException as exc:
            committed.set_exception(exc)  # the batches after this one fail with it
            committed.exception()  # marked as seen: the task's own failure is what is reported
            raise
        finally:
            idle.put_nowait(conn)
        committed.set_result(None)
        ready = self._acks.committed(order for order, _ in batch)
        acks.send((len(batch), ready))  # the count frees room in the receiver

    async def _commit(
        self, conn: AsyncConnection[DictRow], batch: Decoded, turn: Turn
    ) -> AsyncConnection[DictRow]:
        """Write a batch until it commits, reconnecting as needed; returns the connection."""
        while True:
            try:
                await self.pipeline.write(conn, batch, turn)
                return conn
            except psycopg.OperationalError as exc:
                log.warning("batch not committed; retrying", error=str(exc), size=batch.size)
                await conn.close()
                conn = await self._connect_db()

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.health_interval)
            try:
                conn = await connect(self.config.database_url)
                async with conn, conn.transaction():
                    signals = await sweep(
                        conn, self.pipeline.registry.devices, self.health, datetime.now(UTC)
                    )
                await self.pipeline.bus.publish(signals)
            except psycopg.OperationalError as exc:
                log.warning("health sweep skipped", error=str(exc))
