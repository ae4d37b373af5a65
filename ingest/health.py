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
from vision.status import watched_cameras

log = get_logger(__name__)

# NB-IoT smoke sensors report a heartbeat about once a day; cameras are watched constantly.
DEFAULT_HEARTBEATS = {
    "smoke_sensor": timedelta(hours=25),
    "id_reader": timedelta(minutes=30),
    "camera": timedelta(minutes=2),
}


def watched_elsewhere(device: DeviceRef) -> bool:
    """GB/T 28181 devices and their catalog cameras: the GB process watches them, each with
    its own deadline (sweep_deadlines)."""
    return device.type == "gb28181" or "gb_device" in device.tags


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
    heard: set[str] | None = None,
) -> list[Signal]:
    """Report devices that went offline, or never came online within their heartbeat of
    registration; stores the signals in the caller's transaction. `heard`: ids known to have
    a state row, kept by the caller between sweeps to spare the registry-wide lookup.

    A camera is heard through the vision worker that analyses it: only a camera a worker
    holds is expected to be heard, from when it took it. With vision off (no model, no
    worker) no camera is called offline; vision says it is off instead."""
    watched = await watched_cameras(conn)
    devices = {k: d for k, d in devices.items() if d.type != "camera" or k in watched}
    signals = await _gone_quiet(conn, devices, policy, now, watched)
    signals += await _never_connected(
        conn, devices, policy, now, set() if heard is None else heard, watched
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
    if signals:
        await signal_log.append(conn, signals)  # last: it holds the log's lock until commit
    return signals


async def _gone_quiet(
    conn: AsyncConnection[DictRow],
    devices: dict[str, DeviceRef],
    policy: HealthPolicy,
    now: datetime,
    watched: dict[str, datetime],
) -> list[Signal]:
    """Devices heard before that sent a last will or fell silent. Rows are claimed with SKIP
    LOCKED, so several ingest processes never report one twice."""
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
        if device is None or not device.enabled or watched_elsewhere(device):
            continue
        heard_from = (
            max(row["last_seen"], watched.get(device.id, row["last_seen"]))
            if row["last_seen"]
            else None
        )
        silent_for = now - heard_from if heard_from else None
        heartbeat = policy.heartbeat.get(device.type, shortest)
        if not row["online"]:
            reason = "last_will"
        elif silent_for is not None and silent_for > heartbeat:
            reason = "heartbeat_timeout"
        else:
            continue
        signals.append(_offline(device, now, reason, row["last_seen"]))
    if signals:
        await conn.execute(
            "UPDATE device_state SET reported_offline = true, online = false,"
            " offline_since = coalesce(offline_since, %s), updated_at = now()"
            " WHERE device_id = ANY(%s)",
            (now, [s.source_id for s in signals]),
        )
    return signals


async def _never_connected(
    conn: AsyncConnection[DictRow],
    devices: dict[str, DeviceRef],
    policy: HealthPolicy,
    now: datetime,
    heard: set[str],
    watched: dict[str, datetime],
) -> list[Signal]:
    """Enabled devices with no state row a heartbeat after registration: reported once, with
    a state row that says so (the device's first message then says `device_online`)."""
    shortest = min(policy.heartbeat.values())
    due = [
        d
        for d in devices.values()
        if d.enabled
        and d.id not in heard
        and not watched_elsewhere(d)
        and d.registered_at is not None
        and now - max(d.registered_at, watched.get(d.id, d.registered_at))
        > policy.heartbeat.get(d.type, shortest)
    ]
    if not due:
        return []
    cur = await conn.execute(
        "SELECT device_id FROM device_state WHERE device_id = ANY(%s)", ([d.id for d in due],)
    )
    heard.update(row["device_id"] for row in await cur.fetchall())  # committed rows only
    silent = [d for d in due if d.id not in heard]
    if not silent:
        return []
    cur = await conn.execute(
        "INSERT INTO device_state (device_id, online, offline_since, reported_offline)"
        " SELECT id, false, at, true FROM unnest(%s::text[], %s::timestamptz[]) AS t (id, at)"
        " ON CONFLICT (device_id) DO NOTHING RETURNING device_id",
        ([d.id for d in silent], [d.registered_at for d in silent]),
    )
    inserted = {row["device_id"] for row in await cur.fetchall()}
    return [_offline(d, now, "never_connected", None) for d in silent if d.id in inserted]


async def sweep_deadlines(
    conn: AsyncConnection[DictRow],
    watched: dict[str, tuple[DeviceRef, timedelta]],
    now: datetime,
    grace: timedelta = HealthPolicy().grace,
) -> list[Signal]:
    """`device_offline` for devices silent past their own deadline, or gone (offline) for
    longer than the grace period, with the same blip suppression as `sweep`; stores the
    signals in the caller's transaction. `watched`: device id → (device, deadline)."""
    if not watched:
        return []
    cur = await conn.execute(
        "SELECT device_id, last_seen, online, offline_since FROM device_state"
        " WHERE device_id = ANY(%s) AND NOT reported_offline FOR UPDATE SKIP LOCKED",
        (sorted(watched),),
    )
    signals: list[Signal] = []
    for row in await cur.fetchall():
        device, deadline = watched[row["device_id"]]
        if not device.enabled:
            continue
        if not row["online"] and row["offline_since"] and row["offline_since"] <= now - grace:
            reason = "unregistered"
        elif row["last_seen"] is not None and now - row["last_seen"] > deadline:
            reason = "heartbeat_timeout"
        else:
            continue
        signals.append(_offline(device, now, reason, row["last_seen"]))
    if not signals:
        return []
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


def _offline(device: DeviceRef, now: datetime, reason: str, last_seen: datetime | None) -> Signal:
    return Signal(
        ts=now,
        kind="device_offline",
        source_id=device.id,
        source_type=device.type,
        area=device.area,
        site=device.site,
        building=device.building,
        floor=device.floor,
        tags=device.tags,
        attrs={"reason": reason, "last_seen": last_seen.isoformat() if last_seen else None},
    )


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
    heard: set[str] = set()
    while True:
        try:
            conn = await connect(database_url)
            async with conn, conn.transaction():
                await sweep(conn, registry.devices, policy, datetime.now(UTC), heard)
            probe.ready()
        except psycopg.OperationalError as exc:
            probe.down(f"database: {type(exc).__name__}")
            log.warning("health sweep skipped", error=str(exc))
        await asyncio.sleep(interval)
