"""Device health: offline after a silent heartbeat period or a last will, with blip suppression."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import DictRow

from devices.registry import DeviceRef
from hub import signal_log
from hub.contracts import Signal
from hub.db import connect
from hub.events import announce
from hub.logs import get_logger
from hub.supervisor import Probe
from ingest.registry_view import RegistryView

log = get_logger(__name__)

# NB-IoT smoke sensors report a heartbeat about once a day; cameras are watched constantly.
DEFAULT_HEARTBEATS = {
    "smoke_sensor": timedelta(hours=25),
    "id_reader": timedelta(minutes=30),
    "camera": timedelta(minutes=2),
}


@dataclass(frozen=True)
class HealthPolicy:
    heartbeat: dict[str, timedelta] = field(default_factory=lambda: dict(DEFAULT_HEARTBEATS))
    # A last will followed by a reconnect within this time raises nothing.
    grace: timedelta = timedelta(seconds=60)


async def sweep(
    conn: AsyncConnection[DictRow],
    devices: dict[str, DeviceRef],
    policy: HealthPolicy,
    now: datetime,
) -> list[Signal]:
    """Report devices that went offline; stores the signals in the caller's transaction.

    Rows are claimed with SKIP LOCKED, so several ingest processes never report one twice.
    """
    shortest = min(policy.heartbeat.values())
    cur = await conn.execute(
        """
        SELECT device_id, last_seen, online, offline_since FROM device_state
        WHERE NOT reported_offline
          AND ((NOT online AND offline_since <= %s) OR last_seen < %s)
        FOR UPDATE SKIP LOCKED
        """,
        (now - policy.grace, now - shortest),
    )
    signals: list[Signal] = []
    for row in await cur.fetchall():
        device = devices.get(row["device_id"])
        if device is None or not device.enabled:
            continue
        silent_for = now - row["last_seen"] if row["last_seen"] else None
        heartbeat = policy.heartbeat.get(device.type, shortest)
        if not row["online"]:
            reason = "last_will"
        elif silent_for is not None and silent_for > heartbeat:
            reason = "heartbeat_timeout"
        else:
            continue
        signals.append(
            Signal(
                ts=now,
                kind="device_offline",
                source_id=device.id,
                source_type=device.type,
                area=device.area,
                site=device.site,
                building=device.building,
                tags=device.tags,
                attrs={
                    "reason": reason,
                    "last_seen": row["last_seen"].isoformat() if row["last_seen"] else None,
                },
            )
        )
    if signals:
        await conn.execute(
            "UPDATE device_state SET reported_offline = true, online = false,"
            " offline_since = coalesce(offline_since, %s), updated_at = now()"
            " WHERE device_id = ANY(%s)",
            (now, [s.source_id for s in signals]),
        )
        for s in signals:
            await announce(
                conn,
                "device.offline",
                id=s.source_id,
                area=s.area,
                reason=s.attrs["reason"],
                last_seen=s.attrs["last_seen"],
            )
        await signal_log.append(conn, signals)  # last: it holds the log's lock until commit
    return signals


async def run_health(
    database_url: str,
    registry: RegistryView,
    probe: Probe,
    *,
    policy: HealthPolicy | None = None,
    interval: float = 10.0,
) -> None:
    """Sweep every `interval` seconds until cancelled, against the live registry view."""
    policy = policy or HealthPolicy()
    while True:
        try:
            conn = await connect(database_url)
            async with conn, conn.transaction():
                await sweep(conn, registry.devices, policy, datetime.now(UTC))
            probe.ready()
        except psycopg.OperationalError as exc:
            probe.down(f"database: {type(exc).__name__}")
            log.warning("health sweep skipped", error=str(exc))
        await asyncio.sleep(interval)
