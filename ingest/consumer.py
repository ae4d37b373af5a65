"""The MQTT front door: QoS 1, a persistent session, acknowledgement only after commit.

paho's network thread appends each message to a deque; the asyncio side drains it in batches,
commits them, and only then acknowledges them, in arrival order. A message that was not
acknowledged before a crash or a reconnect is redelivered by the broker and deduplicated by
(device_id, seq).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from psycopg import AsyncConnection
from psycopg.rows import DictRow

from hub.db import connect
from hub.logs import get_logger
from hub.settings import MqttUrl
from ingest.decode import Message
from ingest.health import HealthPolicy, sweep
from ingest.pipeline import Pipeline

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
    flush_interval: float = 0.005
    health_interval: float = 10.0
    receive_maximum: int = 2000

    @property
    def subscription(self) -> str:
        return f"$share/{SHARED_GROUP}/{UPLINKS}" if self.shared else UPLINKS


class MqttConsumer:
    """Runs until cancelled: MQTT session, batch writer, health sweeps."""

    def __init__(
        self, config: ConsumerConfig, pipeline: Pipeline, health: HealthPolicy | None = None
    ) -> None:
        self.config = config
        self.pipeline = pipeline
        self.health = health or HealthPolicy()
        self._inbox: deque[Message] = deque()
        self._generation = 0
        self._client = self._make_client()
        self.connected = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        conn = await self._connect_db()
        await self.pipeline.registry.load(conn)
        await conn.commit()
        self._start_mqtt()
        tasks = [
            asyncio.create_task(self.pipeline.registry.follow(self.config.database_url)),
            asyncio.create_task(self._health_loop()),
        ]
        try:
            await self._drain_loop(conn)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._client.disconnect()
            self._client.loop_stop()
            await conn.close()

    # --- MQTT side (paho's thread) --------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        cfg = self.config
        protocol = mqtt.MQTTv5 if cfg.mqtt_v5 else mqtt.MQTTv311
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=cfg.client_id,
            protocol=protocol,
            clean_session=None if cfg.mqtt_v5 else False,
            manual_ack=True,
        )
        if cfg.mqtt.username:
            client.username_pw_set(cfg.mqtt.username, cfg.mqtt.password)
        if cfg.mqtt.tls:
            client.tls_set_context(ssl.create_default_context())
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def _start_mqtt(self) -> None:
        cfg = self.config
        properties = None
        if cfg.mqtt_v5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = 7 * 24 * 3600  # keep our queue across restarts
            properties.ReceiveMaximum = cfg.receive_maximum
        self._client.connect_async(
            cfg.mqtt.host,
            cfg.mqtt.port,
            keepalive=30,
            clean_start=False if cfg.mqtt_v5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
            properties=properties,
        )
        self._client.loop_start()

    def _on_connect(
        self, client: mqtt.Client, userdata: object, flags: object, reason: object, props: object
    ) -> None:
        if getattr(reason, "is_failure", False):
            log.error("MQTT connection refused", reason=str(reason))
            return
        # Messages delivered on an earlier connection can no longer be acknowledged; the
        # broker redelivers them on this one.
        self._generation += 1
        client.subscribe(self.config.subscription, qos=1)
        log.info("MQTT connected", subscription=self.config.subscription)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.connected.set)

    def _on_disconnect(
        self, client: mqtt.Client, userdata: object, flags: object, reason: object, props: object
    ) -> None:
        log.warning("MQTT disconnected; reconnecting", reason=str(reason))
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.connected.clear)

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        self._inbox.append(
            Message(
                topic=msg.topic,
                payload=bytes(msg.payload),
                received_at=datetime.now(UTC),
                mid=msg.mid,
                qos=msg.qos,
                generation=self._generation,
            )
        )

    # --- database side (asyncio) ------------------------------------------------------------

    async def _connect_db(self) -> AsyncConnection[DictRow]:
        delay = 0.5
        while True:
            try:
                conn = await connect(self.config.database_url)
                return conn
            except psycopg.OperationalError as exc:
                log.warning("database unavailable; retrying", error=str(exc), delay=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)

    async def _drain_loop(self, conn: AsyncConnection[DictRow]) -> None:
        while True:
            if not self._inbox:
                await asyncio.sleep(self.config.flush_interval)
                continue
            count = min(len(self._inbox), self.config.max_batch)
            batch = [self._inbox.popleft() for _ in range(count)]
            while True:
                try:
                    await self.pipeline.process(conn, batch)
                    break
                except psycopg.OperationalError as exc:
                    log.warning("batch not committed; retrying", error=str(exc), size=len(batch))
                    await conn.close()
                    conn = await self._connect_db()
            self._acknowledge(batch)

    def _acknowledge(self, batch: list[Message]) -> None:
        generation = self._generation
        for message in batch:
            if message.qos > 0 and message.generation == generation:
                self._client.ack(message.mid, message.qos)

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
