"""Messages in, committed rows and published signals out: the path every uplink takes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import DictRow

from hub.logs import get_logger
from ingest import metrics
from ingest.decode import (
    Accepted,
    DecodeContext,
    Message,
    Reason,
    Rejection,
    Topic,
    decode,
    parse_topic,
)
from ingest.downlink import Downlink
from ingest.registry_view import RegistryView
from ingest.staging import prepare_connection
from ingest.store import BatchResult, Key, Turn, no_wait, write_batch

log = get_logger(__name__)
_DECODE_SLICE = 200  # messages decoded between turns of the event loop: about 2 ms


@dataclass
class Decoded:
    """A batch after decoding, ready to be written."""

    size: int
    accepted: list[Accepted]
    rejected: list[tuple[Message, Rejection]]
    started: float

    def keys(self) -> set[Key]:
        """The (device_id, seq, ts) keys this batch will claim in `uplinks`."""
        return {(acc.device.id, acc.seq, acc.ts) for acc in self.accepted if acc.seq is not None}


@dataclass
class Pipeline:
    """Decode, validate against the registry, and store in one transaction (signals included,
    in the signal log that the rules engine reads)."""

    registry: RegistryView
    secret: bytes
    # Where ID-card verdicts go once their reads are committed; None: not sent (tests, benches).
    downlink: Downlink | None = None

    async def process(
        self, conn: AsyncConnection[DictRow], messages: Sequence[Message]
    ) -> BatchResult:
        """Handle a batch on `conn`; returns after commit. Raises (nothing committed) on a
        database failure, so the caller can retry without acknowledging."""
        return await self.write(conn, await self.decode(conn, messages))

    async def decode(self, conn: AsyncConnection[DictRow], messages: Sequence[Message]) -> Decoded:
        """Check topics, registry and schemas; `conn` is used only to look up devices this
        process has not seen yet (and committed at once)."""
        started = time.perf_counter()
        topics = [parse_topic(m.topic) for m in messages]
        unknown = {
            t.device_id
            for t in topics
            if not isinstance(t, Rejection) and t.device_id not in self.registry.devices
        }
        if unknown:
            await self.registry.lookup_missing(conn, unknown)
            await conn.commit()
        ctx = DecodeContext(devices=self.registry.devices, secret=self.secret)
        accepted: list[Accepted] = []
        rejected: list[tuple[Message, Rejection]] = []
        # A slice at a time, the event loop getting a turn in between, so that an alarm on the
        # other lane is not held up by a large telemetry batch. (A worker thread did that
        # before, but a coroutine woken while the thread held the GIL could wait out the
        # interpreter's 5 ms switch interval, and the writers' database round trips paid it.)
        for start in range(0, len(messages), _DECODE_SLICE):
            if start:
                await asyncio.sleep(0)
            end = start + _DECODE_SLICE
            _decode_into(accepted, rejected, messages[start:end], topics[start:end], ctx)
        return Decoded(len(messages), accepted, rejected, started)

    async def write(
        self, conn: AsyncConnection[DictRow], batch: Decoded, turn: Turn = no_wait
    ) -> BatchResult:
        """Store a decoded batch in one transaction. Raises (nothing committed) on a database
        failure; the same batch can be written again. `turn`: see `write_batch`."""
        await prepare_connection(conn)
        rejected = list(batch.rejected)  # the one-by-one path appends to it
        try:
            async with conn.transaction():
                result = await write_batch(conn, batch.accepted, rejected, turn)
        except psycopg.DataError:
            # A value the database refuses (a NUL in text, say) fails the whole COPY; find the
            # culprits one by one so every good message beside them still lands.
            await turn()
            result = await self._write_one_by_one(conn, batch.accepted, rejected)
        self._send_verdicts(result)
        self._count(result, batch.size, time.perf_counter() - batch.started)
        return result

    def _send_verdicts(self, result: BatchResult) -> None:
        """Hand the committed reads' verdicts to the downlink (QoS 1, not awaited: the reader's
        persistent session holds them while it is away)."""
        for verdict in result.verdicts:
            queued = self.downlink is not None and self.downlink.post(
                verdict.area, verdict.device_id, verdict.payload()
            )
            metrics.VERDICTS.labels(verdict.verdict, "sent" if queued else "not_sent").inc()

    @staticmethod
    async def _write_one_by_one(
        conn: AsyncConnection[DictRow],
        accepted: list[Accepted],
        rejected: list[tuple[Message, Rejection]],
    ) -> BatchResult:
        total = BatchResult()
        for acc in accepted:
            try:
                async with conn.transaction():
                    part = await write_batch(conn, [acc], [])
            except psycopg.DataError as exc:
                detail = str(exc).splitlines()[0][:200]
                device = acc.device
                rejected.append(
                    (
                        acc.message,
                        Rejection(
                            Reason.SCHEMA,
                            f"refused by database: {detail}",
                            device_id=device.id,
                            device_type=device.type,
                            area=device.area,
                        ),
                    )
                )
                continue
            total.accepted += part.accepted
            total.readings += part.readings
            total.signals += part.signals
            total.verdicts += part.verdicts
            total.rejected.update(part.rejected)
        async with conn.transaction():
            part = await write_batch(conn, [], rejected)
        total.rejected.update(part.rejected)
        return total

    @staticmethod
    def _count(result: BatchResult, size: int, seconds: float) -> None:
        metrics.MESSAGES.labels("accepted").inc(result.accepted)
        metrics.MESSAGES.labels("rejected").inc(sum(result.rejected.values()))
        for reason, n in result.rejected.items():
            metrics.DEAD_LETTERS.labels(reason).inc(n)
        for signal in result.signals:
            metrics.SIGNALS.labels(signal.kind).inc()
        metrics.READINGS.inc(result.readings)
        metrics.BATCH_SECONDS.observe(seconds)
        metrics.BATCH_SIZE.observe(size)


def _decode_into(
    accepted: list[Accepted],
    rejected: list[tuple[Message, Rejection]],
    messages: Sequence[Message],
    topics: Sequence[Topic | Rejection],
    ctx: DecodeContext,
) -> None:
    for message, topic in zip(messages, topics, strict=True):
        if isinstance(topic, Rejection):
            rejected.append((message, topic))
            continue
        if topic.channel == "cmd":
            continue  # the hub's own downlink, seen on the shared wildcard
        try:
            outcome = decode(message, topic, ctx)
        except Exception as exc:  # a decoder bug must cost one message, not the consumer
            log.exception("decoder failed", topic=message.topic)
            device = ctx.devices.get(topic.device_id)
            outcome = Rejection(
                Reason.SCHEMA,
                f"could not decode: {type(exc).__name__}",
                device_id=topic.device_id,
                device_type=device.type if device else None,
                area=device.area if device else topic.area,
            )
        if isinstance(outcome, Rejection):
            rejected.append((message, outcome))
        else:
            accepted.append(outcome)


__all__ = ["Decoded", "Message", "Pipeline", "Reason"]
