"""The GB/T 28181 application's queries: registrations, alarm inputs, alarm dedupe."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from psycopg import AsyncConnection
from psycopg.rows import DictRow

from gb28181.catalog import Channel


@dataclass(frozen=True, slots=True)
class StoredRegistration:
    device_id: str
    transport: str
    host: str
    port: int
    gb_version: str | None
    expires_at: datetime
    registered_at: datetime


async def save_registration(conn: AsyncConnection[DictRow], reg: StoredRegistration) -> None:
    await conn.execute(
        "INSERT INTO gb28181_registrations AS r (device_id, transport, host, port, gb_version,"
        " expires_at, registered_at) VALUES (%s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (device_id) DO UPDATE SET transport = excluded.transport,"
        " host = excluded.host, port = excluded.port, gb_version = excluded.gb_version,"
        " expires_at = excluded.expires_at, registered_at = excluded.registered_at",
        (
            reg.device_id,
            reg.transport,
            reg.host,
            reg.port,
            reg.gb_version,
            reg.expires_at,
            reg.registered_at,
        ),
    )


async def drop_registration(conn: AsyncConnection[DictRow], device_id: str) -> None:
    await conn.execute("DELETE FROM gb28181_registrations WHERE device_id = %s", (device_id,))


async def live_registrations(
    conn: AsyncConnection[DictRow], now: datetime
) -> list[StoredRegistration]:
    """Registrations not yet expired (a restarted process takes them up again)."""
    cur = await conn.execute(
        "SELECT device_id, transport, host, port, gb_version, expires_at, registered_at"
        " FROM gb28181_registrations WHERE expires_at > %s",
        (now,),
    )
    return [StoredRegistration(**row) for row in await cur.fetchall()]


async def save_catalog_progress(
    conn: AsyncConnection[DictRow], device_id: str, total: int | None, got: int, at: datetime
) -> None:
    await conn.execute(
        "UPDATE gb28181_registrations SET catalog_sum = %s, catalog_got = %s, catalog_at = %s"
        " WHERE device_id = %s",
        (total, got, at, device_id),
    )


async def save_device_info(
    conn: AsyncConnection[DictRow],
    device_id: str,
    manufacturer: str | None,
    model: str | None,
    firmware: str | None,
) -> None:
    await conn.execute(
        "UPDATE gb28181_registrations SET manufacturer = %s, model = %s, firmware = %s"
        " WHERE device_id = %s",
        (manufacturer, model, firmware, device_id),
    )


async def save_alarm_inputs(
    conn: AsyncConnection[DictRow], device_id: str, channels: list[Channel]
) -> None:
    if not channels:
        return
    await conn.execute(
        "INSERT INTO gb28181_alarm_inputs (device_id, channel_id, name, status)"
        " SELECT %s, * FROM unnest(%s::text[], %s::text[], %s::text[])"
        " ON CONFLICT (device_id, channel_id) DO UPDATE SET name = excluded.name,"
        " status = excluded.status, updated_at = now()",
        (
            device_id,
            [c.id for c in channels],
            [c.fields.get("name") for c in channels],
            [c.fields.get("status") for c in channels],
        ),
    )


async def drop_alarm_inputs(
    conn: AsyncConnection[DictRow], device_id: str, channel_ids: list[str]
) -> None:
    await conn.execute(
        "DELETE FROM gb28181_alarm_inputs WHERE device_id = %s AND channel_id = ANY(%s)",
        (device_id, channel_ids),
    )


async def alarm_inputs(conn: AsyncConnection[DictRow], device_id: str) -> list[str]:
    cur = await conn.execute(
        "SELECT channel_id FROM gb28181_alarm_inputs WHERE device_id = %s ORDER BY channel_id",
        (device_id,),
    )
    return [row["channel_id"] for row in await cur.fetchall()]


async def first_sighting(
    conn: AsyncConnection[DictRow], device_id: str, sn: str, alarm_time: str
) -> bool:
    """Whether this (device, SN, AlarmTime) is new; it is recorded either way."""
    cur = await conn.execute(
        "INSERT INTO gb28181_alarms_seen (device_id, sn, alarm_time) VALUES (%s, %s, %s)"
        " ON CONFLICT DO NOTHING",
        (device_id, sn, alarm_time),
    )
    return cur.rowcount == 1


async def prune_alarms_seen(conn: AsyncConnection[DictRow], now: datetime) -> None:
    await conn.execute(
        "DELETE FROM gb28181_alarms_seen WHERE seen_at < %s", (now - timedelta(days=1),)
    )
