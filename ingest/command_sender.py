"""Ingest's command sender: publishes the commands the API queued (devices.commands) and
expires those nobody answered in time. Woken by the NOTIFY of each new command, and once a
second for expiry. Several may run (one per ingest process): each takes its commands with
SKIP LOCKED, and a command sent twice is told apart by its `cmd_id` on the device."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from psycopg import AsyncConnection
from psycopg.rows import DictRow

from devices.commands import COMMANDS_CHANNEL, expire_unanswered, mark_sent, take_pending
from hub.db import open_pool
from hub.listen import wakeups
from hub.logs import get_logger
from hub.settings import MqttUrl
from hub.supervisor import Probe
from ingest.downlink import Downlink

log = get_logger(__name__)


@dataclass(frozen=True)
class CommandSenderConfig:
    database_url: str
    mqtt: MqttUrl
    mqtt_v5: bool = True
    tick_s: float = 1.0


async def send_pending(conn: AsyncConnection[DictRow], downlink: Downlink) -> int:
    """Publish what is pending, one batch, in one transaction; how many the broker took.
    A command the broker did not take stays pending for the next wakeup."""
    async with conn.transaction():
        commands = await take_pending(conn, datetime.now(UTC))
        sent = [c.id for c in commands if await downlink.send(c.area, c.device_id, c.downlink())]
        await mark_sent(conn, sent, datetime.now(UTC))
    if len(sent) < len(commands):
        log.warning("commands not taken by the broker", left=len(commands) - len(sent))
    return len(sent) if len(sent) == len(commands) else 0


async def run_command_sender(config: CommandSenderConfig, probe: Probe) -> None:
    """Until cancelled, or a failure (the supervisor then starts a fresh one)."""
    downlink = Downlink(config.mqtt, mqtt_v5=config.mqtt_v5)
    pool = await open_pool(config.database_url, max_size=2)
    try:
        async for _ in wakeups(
            config.database_url, [COMMANDS_CHANNEL], idle=config.tick_s, probe=probe
        ):
            async with pool.connection() as conn:
                if downlink.connected:
                    while await send_pending(conn, downlink):
                        pass
                async with conn.transaction():
                    expired = await expire_unanswered(conn, datetime.now(UTC))
            if expired:
                log.info("commands expired unanswered", count=expired)
            probe.ready()
    finally:
        await pool.close()
        downlink.close()
