"""The MQTT front door: QoS 1, a persistent session, acknowledgement only after commit.

The MQTT session runs in a child process (`ingest.receiver`, reached through
`ingest.receiver_link`); this process sorts deliveries into two lanes, so an alarm never
waits behind a telemetry batch already being written, and writes each lane in batches
(`ingest.lane_writer`). A message is acknowledged once its own batch has committed, never
later work: the rules engine reads the committed signals from the log in another component.
A message not acknowledged before a crash or a reconnect is redelivered by the broker and
deduplicated by (device_id, seq, ts).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime

from hub.logs import get_logger
from hub.settings import MqttUrl
from hub.supervisor import Probe
from ingest import metrics
from ingest.acks import AckSequencer
from ingest.lane_writer import Lane, LaneWriter, ReceiverGone, connect_writer
from ingest.pipeline import Pipeline
from ingest.receiver import Delivered, SessionConfig
from ingest.receiver_link import ReceiverLink

log = get_logger(__name__)
UPLINKS = "sb/+/+/+"
SHARED_GROUP = "sb-ingest"

__all__ = ["ConsumerConfig", "MqttConsumer", "ReceiverGone"]


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
    receive_maximum: int = 8000
    # Messages received but not yet committed, at most: past it the receiver stops reading
    # and the broker keeps the rest. (mosquitto 2.0 has been seen sending far beyond the
    # Receive Maximum during a backlog, which without this grew the process by 300k messages.)
    max_in_hand: int = 50_000

    @property
    def subscription(self) -> str:
        return f"$share/{SHARED_GROUP}/{UPLINKS}" if self.shared else UPLINKS

    def session(self) -> SessionConfig:
        return SessionConfig(
            mqtt=self.mqtt,
            client_id=self.client_id,
            subscription=self.subscription,
            mqtt_v5=self.mqtt_v5,
            receive_maximum=self.receive_maximum,
            flush_interval=self.flush_interval,
            max_in_hand=self.max_in_hand,
        )


class MqttConsumer:
    """Runs until cancelled (or the receiver process dies: ReceiverGone)."""

    def __init__(self, config: ConsumerConfig, pipeline: Pipeline) -> None:
        self.config = config
        self.pipeline = pipeline
        self.events = Lane("events")
        self.telemetry = Lane("telemetry")
        self.acks = AckSequencer()
        self.link = ReceiverLink(config.session(), self._arrived, self._wake_lanes)
        metrics.IN_HAND.set_function(lambda: len(self.acks))

    @property
    def connected(self) -> asyncio.Event:
        return self.link.connected

    async def run(self, probe: Probe | None = None) -> None:
        lookups = await connect_writer(self.config.database_url)
        await self.pipeline.registry.load(lookups)
        await lookups.commit()
        events = [await connect_writer(self.config.database_url)]
        telemetry = [
            await connect_writer(self.config.database_url)
            for _ in range(self.config.telemetry_writers)
        ]
        self.link.start()
        watch = asyncio.create_task(self._report(probe)) if probe else None
        try:
            await asyncio.gather(
                self._writer(self.events).run(lookups, events),
                self._writer(self.telemetry).run(lookups, telemetry),
            )
        finally:
            if watch:
                watch.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watch
            self.link.close()
            for conn in [lookups, *events, *telemetry]:
                await conn.close()

    def _writer(self, lane: Lane) -> LaneWriter:
        return LaneWriter(
            lane,
            self.pipeline,
            self.acks,
            self.link.acknowledge,
            database_url=self.config.database_url,
            max_batch=self.config.max_batch,
            receiver_gone=self.link.gone,
        )

    def _arrived(self, received_at: datetime, delivery: Delivered) -> None:
        lane = self.events if delivery[0].endswith("/event") else self.telemetry
        lane.queue.append((self.acks.arrived(delivery[3:]), received_at, delivery))
        lane.arrived.set()

    def _wake_lanes(self) -> None:
        """The receiver is gone: writers waiting for messages wake up and say so."""
        self.events.arrived.set()
        self.telemetry.arrived.set()

    async def _report(self, probe: Probe) -> None:
        """The component is ready while the MQTT session is connected."""
        while True:
            self.link.changed.clear()
            if self.link.connected.is_set():
                probe.ready()
            else:
                probe.down(f"broker: {self.link.disconnect_reason}")
            await self.link.changed.wait()
