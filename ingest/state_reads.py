"""What the hub knows of devices' state, for the API: one device's, a page's, and conditions
that filter a device listing by it (offline, battery, silent since)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from psycopg import AsyncConnection, sql
from psycopg.rows import DictRow
from pydantic import BaseModel, Field

from devices import registry

StateName = Literal["never_connected", "online", "offline"]


class DeviceState(BaseModel):
    status: StateName = Field(
        description="never_connected: nothing heard since registration; offline: a last will,"
        " or silent past its heartbeat (`offline_reported` once the hub has raised it)"
    )
    online: bool
    last_seen: datetime | None = Field(description="the hub's clock at the last message")
    offline_since: datetime | None
    offline_reported: bool
    battery_pct: float | None
    rssi_dbm: float | None
    fw: str | None
    updated_at: datetime | None


NEVER_CONNECTED = DeviceState(
    status="never_connected",
    online=False,
    last_seen=None,
    offline_since=None,
    offline_reported=False,
    battery_pct=None,
    rssi_dbm=None,
    fw=None,
    updated_at=None,
)


async def states_of(conn: AsyncConnection[DictRow], ids: list[str]) -> dict[str, DeviceState]:
    """Each device's state; a device the hub has heard nothing from is `never_connected`."""
    cur = await conn.execute(
        "SELECT device_id, last_seen, online, offline_since, reported_offline, battery_pct,"
        " rssi_dbm, fw, updated_at FROM device_state WHERE device_id = ANY(%s)",
        (ids,),
    )
    found = {row["device_id"]: _state(row) for row in await cur.fetchall()}
    return {device_id: found.get(device_id, NEVER_CONNECTED) for device_id in ids}


def _state(row: DictRow) -> DeviceState:
    status: StateName
    if row["last_seen"] is None:
        status = "never_connected"
    else:
        status = "online" if row["online"] else "offline"
    return DeviceState(
        status=status,
        online=row["online"],
        last_seen=row["last_seen"],
        offline_since=row["offline_since"],
        offline_reported=row["reported_offline"],
        battery_pct=row["battery_pct"],
        rssi_dbm=row["rssi_dbm"],
        fw=row["fw"],
        updated_at=row["updated_at"],
    )


@dataclass(frozen=True, slots=True)
class StateFilter:
    online: bool | None = None
    battery_below: float | None = None
    silent_since: datetime | None = None  # heard nothing since (never heard counts)


def state_condition(wanted: StateFilter) -> sql.Composable | None:
    """A condition on a `devices` row for the registry's listing; None when nothing is asked."""
    parts: list[sql.Composable] = []
    if wanted.online is not None:
        parts.append(_has(sql.SQL("s.online"), negate=not wanted.online))
    if wanted.battery_below is not None:
        parts.append(_has(sql.SQL("s.battery_pct < {}").format(wanted.battery_below)))
    if wanted.silent_since is not None:
        parts.append(_has(sql.SQL("s.last_seen >= {}").format(wanted.silent_since), negate=True))
    return sql.SQL(" AND ").join(parts) if parts else None


def _has(condition: sql.Composable, *, negate: bool = False) -> sql.Composable:
    return sql.SQL(
        "{} EXISTS (SELECT 1 FROM device_state s WHERE s.device_id = devices.id AND {})"
    ).format(sql.SQL("NOT" if negate else ""), condition)


class OnlineCount(BaseModel):
    online: int
    total: int


# Device types that are video: a camera's stream, a GB/T 28181 camera, NVR or platform.
VIDEO_TYPES = ("camera", "gb28181")


async def online_counts(
    conn: AsyncConnection[DictRow], *, scope: str, area: str | None = None
) -> dict[str, OnlineCount]:
    """Enabled devices within the caller's area (and `area`) and how many of them are online
    now, as `devices` (sensors, readers) and `cameras` (VIDEO_TYPES). Never connected counts
    as not online."""
    enabled = [
        d for d in await registry.enabled_devices(conn, scope) if d.area.startswith(area or "")
    ]
    states = await states_of(conn, [d.id for d in enabled])
    counts = {"devices": [0, 0], "cameras": [0, 0]}
    for device in enabled:
        count = counts["cameras" if device.type in VIDEO_TYPES else "devices"]
        count[0] += states[device.id].online is True
        count[1] += 1
    return {name: OnlineCount(online=on, total=total) for name, (on, total) in counts.items()}
