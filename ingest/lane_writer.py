"""One lane of messages written in batches, several at a time, in order where it matters.

A lane (alarms and events; telemetry) queues messages as they arrive. Its writer cuts a batch,
decodes it, and writes it on a free connection while it decodes the next, up to one batch per
connection. Each batch's order-dependent part (device state) waits until the batch before it
has committed, so state still moves in arrival order; a batch that shares a (device_id, seq, ts)
key with one not yet committed is written only after it. Once a batch commits, its messages
are acknowledged (in arrival order, through the ack sequencer).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import DictRow

from hub.backoff import Backoff
from hub.db import connect
from hub.logs import get_logger
from ingest.acks import AckSequencer
from ingest.decode import Message
from ingest.pipeline import Decoded, Pipeline
from ingest.receiver import Ack, Delivered
from ingest.store import Key, Turn

log = get_logger(__name__)
_DATABASE_BACK = Backoff(first_s=0.5, max_s=10.0)  # a writer waiting for the database

# What waits in a lane: (arrival number, receive time, delivery as the receiver sent it). Plain
# tuples of plain values, which the garbage collector stops tracking once it has seen them:
# tens of thousands wait here under load, and every collection would walk them again.
Waiting = tuple[int, datetime, Delivered]
Acknowledge = Callable[[int, list[Ack]], None]


class ReceiverGone(RuntimeError):
    """The child process holding the MQTT session died; unacknowledged messages will be
    redelivered to the next one."""


@dataclass
class Lane:
    name: str
    queue: deque[Waiting] = field(default_factory=deque)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)


def _message(waiting: Waiting) -> tuple[int, Message]:
    order, received_at, (topic, payload, retain, mid, qos, generation) = waiting
    return order, Message(topic, payload, received_at, mid, qos, generation, retain)


async def connect_writer(database_url: str) -> AsyncConnection[DictRow]:
    """A writer connection, waiting out a database that is not there yet."""
    retries = _DATABASE_BACK.retries()
    while True:
        try:
            conn = await connect(database_url)
            # A lock wait that involves a batch waiting for its turn (which PostgreSQL
            # cannot see) ends in an error, and the batch is retried, instead of a hang.
            await conn.execute("SET lock_timeout = '10s'")
            await conn.commit()
            return conn
        except psycopg.OperationalError as exc:
            log.warning("database unavailable; retrying", error=str(exc), delay=retries.next_delay)
            await retries.wait()


class LaneWriter:
    def __init__(
        self,
        lane: Lane,
        pipeline: Pipeline,
        acks: AckSequencer,
        acknowledge: Acknowledge,
        *,
        database_url: str,
        max_batch: int,
        receiver_gone: asyncio.Event,
    ) -> None:
        self.lane = lane
        self.pipeline = pipeline
        self.acks = acks
        self.acknowledge = acknowledge
        self.database_url = database_url
        self.max_batch = max_batch
        self.receiver_gone = receiver_gone
        self._writing: set[asyncio.Task[None]] = set()

    async def run(
        self, lookups: AsyncConnection[DictRow], writers: list[AsyncConnection[DictRow]]
    ) -> None:
        """Until cancelled, or a write fails for good, or the receiver goes."""
        idle: asyncio.Queue[AsyncConnection[DictRow]] = asyncio.Queue()
        for conn in writers:
            idle.put_nowait(conn)
        previous: asyncio.Future[None] | None = None
        # (device_id, seq, ts) keys of batches not yet committed. A batch that shares one with
        # them is written only after they commit: otherwise it could take that key's row lock
        # in `uplinks` first and wait for its turn while the earlier batch waits for the lock.
        claimed: list[tuple[set[Key], asyncio.Future[None]]] = []
        try:
            while True:
                await self._wait_for_messages()
                count = min(len(self.lane.queue), self.max_batch)
                batch = [_message(self.lane.queue.popleft()) for _ in range(count)]
                decoded = await self.pipeline.decode(lookups, [message for _, message in batch])
                keys = decoded.keys()
                claimed = [(k, done) for k, done in claimed if not done.done()]
                serial = any(keys & earlier for earlier, _ in claimed)
                conn = await idle.get()
                committed = asyncio.get_running_loop().create_future()
                claimed.append((keys, committed))
                self._start(self._write(conn, batch, decoded, previous, committed, idle, serial))
                previous = committed
        finally:
            for task in self._writing:
                task.cancel()
            await asyncio.gather(*self._writing, return_exceptions=True)

    def _start(self, write: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(write)
        self._writing.add(task)

        def finished(done: asyncio.Task[None]) -> None:
            if done.cancelled() or done.exception() is None:
                self._writing.discard(done)
            else:
                self.lane.arrived.set()  # wake the loop to raise it

        task.add_done_callback(finished)

    async def _wait_for_messages(self) -> None:
        while True:
            self._raise_failed()
            if self.lane.queue:
                return
            if self.receiver_gone.is_set():
                raise ReceiverGone("the MQTT receiver process exited")
            self.lane.arrived.clear()
            await self.lane.arrived.wait()

    def _raise_failed(self) -> None:
        """A write that failed for good (not a lost connection: that is retried) takes the
        consumer down, as it would have before writes overlapped."""
        for task in [t for t in self._writing if t.done() and not t.cancelled()]:
            task.result()

    async def _write(
        self,
        conn: AsyncConnection[DictRow],
        batch: list[tuple[int, Message]],
        decoded: Decoded,
        previous: asyncio.Future[None] | None,
        committed: asyncio.Future[None],
        idle: asyncio.Queue[AsyncConnection[DictRow]],
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
        ready = self.acks.committed(order for order, _ in batch)
        self.acknowledge(len(batch), ready)  # the count frees room in the receiver

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
                conn = await connect_writer(self.database_url)
