"""The cascade's tables: uplinks, their status, the outbox and the delivery log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection, errors
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from devices.credentials import open_sealed, seal_password
from gb28181.cascade.models import Forward, Uplink, UplinkIn, UplinkStatus
from hub.errors import Conflict, Invalid, NotFound

UPLINKS_CHANNEL = "sb_gb_uplinks"  # the GB process reloads its uplinks
OUTBOX_CHANNEL = "sb_gb_cascade"  # a new incident to forward (the outbox trigger says it)
_COLUMNS = (
    "u.id, u.name, u.upper_id, u.upper_domain, u.host, u.port, u.transport, u.local_id,"
    " u.area_prefix, u.forward, u.keepalive_s, u.expires_s, u.enabled, u.created_at,"
    " u.updated_at"
)
_STATUS = (
    "s.registered, s.last_error, s.registered_at, s.last_keepalive, s.clock_skew_ms,"
    " coalesce(s.forwarded, 0) AS forwarded, coalesce(s.failed, 0) AS failed,"
    " (SELECT count(*) FROM gb28181_uplink_deliveries d WHERE d.uplink_id = u.id"
    "  AND d.state = 'pending') AS pending"
)
_SELECT = (
    f"SELECT {_COLUMNS}, {_STATUS} FROM gb28181_uplinks u"
    " LEFT JOIN gb28181_uplink_status s ON s.uplink_id = u.id"
)


def _seal_id(uplink_id: str) -> str:
    return f"uplink:{uplink_id}"


def _uplink(row: dict[str, Any]) -> Uplink:
    status = UplinkStatus(
        registered=bool(row["registered"]),
        last_error=row["last_error"],
        registered_at=row["registered_at"],
        last_keepalive=row["last_keepalive"],
        clock_skew_ms=row["clock_skew_ms"],
        forwarded=row["forwarded"],
        failed=row["failed"],
        pending=row["pending"],
    )
    fields = {k: row[k] for k in Uplink.model_fields if k != "status"}
    return Uplink.model_validate({**fields, "status": status})


async def create_uplink(conn: AsyncConnection[DictRow], data: UplinkIn, seal_key: bytes) -> Uplink:
    if data.password is None:
        raise Invalid("an uplink needs the password the upper platform gave", field="password")
    sealed = seal_password(seal_key, _seal_id(data.id), data.password.get_secret_value())
    try:
        await conn.execute(
            "INSERT INTO gb28181_uplinks (id, name, upper_id, upper_domain, host, port, transport,"
            " sealed_password, local_id, area_prefix, forward, keepalive_s, expires_s, enabled)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                data.id,
                data.name,
                data.upper_id,
                data.upper_domain,
                data.host,
                data.port,
                data.transport,
                sealed,
                data.local_id,
                data.area_prefix,
                Jsonb(data.forward.model_dump()),
                data.keepalive_s,
                data.expires_s,
                data.enabled,
            ),
        )
    except errors.UniqueViolation:
        raise Conflict(f"uplink {data.id} or local_id {data.local_id} exists") from None
    await _changed(conn)
    return await get_uplink(conn, data.id, scope="")


async def replace_uplink(
    conn: AsyncConnection[DictRow], data: UplinkIn, seal_key: bytes, *, scope: str
) -> Uplink:
    """Store the new document; without `password` the stored one is kept."""
    await get_uplink(conn, data.id, scope=scope)
    sealed = (
        seal_password(seal_key, _seal_id(data.id), data.password.get_secret_value())
        if data.password is not None
        else None
    )
    try:
        await conn.execute(
            "UPDATE gb28181_uplinks SET name = %s, upper_id = %s, upper_domain = %s, host = %s,"
            " port = %s, transport = %s, sealed_password = coalesce(%s, sealed_password),"
            " local_id = %s, area_prefix = %s, forward = %s, keepalive_s = %s, expires_s = %s,"
            " enabled = %s, updated_at = now() WHERE id = %s",
            (
                data.name,
                data.upper_id,
                data.upper_domain,
                data.host,
                data.port,
                data.transport,
                sealed,
                data.local_id,
                data.area_prefix,
                Jsonb(data.forward.model_dump()),
                data.keepalive_s,
                data.expires_s,
                data.enabled,
                data.id,
            ),
        )
    except errors.UniqueViolation:
        raise Conflict(f"local_id {data.local_id} is another uplink's") from None
    await _changed(conn)
    return await get_uplink(conn, data.id, scope=scope)


async def delete_uplink(conn: AsyncConnection[DictRow], uplink_id: str, *, scope: str) -> None:
    cur = await conn.execute(
        "DELETE FROM gb28181_uplinks WHERE id = %s AND area_prefix LIKE %s",
        (uplink_id, scope + "%"),
    )
    if cur.rowcount == 0:
        raise NotFound(f"uplink {uplink_id} not found")
    await _changed(conn)


async def get_uplink(conn: AsyncConnection[DictRow], uplink_id: str, *, scope: str) -> Uplink:
    cur = await conn.execute(
        f"{_SELECT} WHERE u.id = %s AND u.area_prefix LIKE %s", (uplink_id, scope + "%")
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"uplink {uplink_id} not found")
    return _uplink(row)


async def list_uplinks(conn: AsyncConnection[DictRow], *, scope: str) -> list[Uplink]:
    cur = await conn.execute(f"{_SELECT} WHERE u.area_prefix LIKE %s ORDER BY u.id", (scope + "%",))
    return [_uplink(row) for row in await cur.fetchall()]


async def _changed(conn: AsyncConnection[DictRow]) -> None:
    await conn.execute("SELECT pg_notify(%s, '')", (UPLINKS_CHANNEL,))


# --- the GB process's view ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UplinkConfig:
    """An enabled uplink as the GB process runs it (the password in clear, in memory only)."""

    id: str
    name: str
    upper_id: str
    upper_domain: str
    host: str
    port: int
    transport: str
    password: str
    local_id: str
    area_prefix: str
    forward: Forward
    keepalive_s: int
    expires_s: int


async def enabled_uplinks(conn: AsyncConnection[DictRow], seal_key: bytes) -> list[UplinkConfig]:
    cur = await conn.execute(
        "SELECT id, name, upper_id, upper_domain, host, port, transport, sealed_password,"
        " local_id, area_prefix, forward, keepalive_s, expires_s FROM gb28181_uplinks"
        " WHERE enabled ORDER BY id"
    )
    found = []
    for row in await cur.fetchall():
        password = open_sealed(seal_key, _seal_id(row["id"]), row.pop("sealed_password"))
        if password is None:
            continue  # sealed under another key: the status says so once it is run
        row["forward"] = Forward.model_validate(row["forward"])
        found.append(UplinkConfig(password=password, **row))
    return found


async def save_status(
    conn: AsyncConnection[DictRow],
    uplink_id: str,
    *,
    registered: bool,
    last_error: str | None,
    registered_at: datetime | None,
    last_keepalive: datetime | None,
    clock_skew_ms: int | None,
) -> None:
    await conn.execute(
        "INSERT INTO gb28181_uplink_status AS s (uplink_id, registered, last_error,"
        " registered_at, last_keepalive, clock_skew_ms) VALUES (%s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (uplink_id) DO UPDATE SET registered = excluded.registered,"
        " last_error = excluded.last_error, registered_at = excluded.registered_at,"
        " last_keepalive = excluded.last_keepalive, clock_skew_ms = excluded.clock_skew_ms,"
        " updated_at = now()",
        (uplink_id, registered, last_error, registered_at, last_keepalive, clock_skew_ms),
    )


async def count_outcome(conn: AsyncConnection[DictRow], uplink_id: str, *, ok: bool) -> None:
    column = "forwarded" if ok else "failed"
    await conn.execute(
        f"INSERT INTO gb28181_uplink_status AS s (uplink_id, {column}) VALUES (%s, 1)"
        f" ON CONFLICT (uplink_id) DO UPDATE SET {column} = s.{column} + 1",
        (uplink_id,),
    )


async def all_status(conn: AsyncConnection[DictRow]) -> list[dict[str, Any]]:
    """Every uplink's status (/metrics)."""
    cur = await conn.execute(
        "SELECT u.id, coalesce(s.registered, false) AS registered, s.last_keepalive,"
        " coalesce(s.forwarded, 0) AS forwarded, coalesce(s.failed, 0) AS failed"
        " FROM gb28181_uplinks u LEFT JOIN gb28181_uplink_status s ON s.uplink_id = u.id"
    )
    return list(await cur.fetchall())


# --- outbox and deliveries ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """A new incident or a chosen signal (exactly one of the two ids)."""

    id: int
    incident_id: int | None
    signal_id: int | None
    area: str
    at: datetime


async def claim_outbox(conn: AsyncConnection[DictRow], limit: int) -> list[OutboxRow]:
    """The oldest unhandled rows, locked for the caller's transaction."""
    cur = await conn.execute(
        "SELECT id, incident_id, signal_id, area, at FROM gb28181_cascade_outbox"
        " WHERE handled_at IS NULL ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
        (limit,),
    )
    return [OutboxRow(**row) for row in await cur.fetchall()]


async def mark_outbox(conn: AsyncConnection[DictRow], ids: list[int], at: datetime) -> None:
    await conn.execute(
        "UPDATE gb28181_cascade_outbox SET handled_at = %s WHERE id = ANY(%s)", (at, ids)
    )


@dataclass(frozen=True, slots=True)
class Planned:
    """One alarm to one uplink, for an incident or a signal (exactly one of the two ids)."""

    uplink_id: str
    incident_id: int | None
    signal_id: int | None
    channel_id: str
    body: bytes


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    uplink_id: str
    incident_id: int | None
    signal_id: int | None
    channel_id: str
    body: bytes
    attempts: int


async def add_deliveries(conn: AsyncConnection[DictRow], rows: list[Planned]) -> None:
    """Store the planned alarms; one already planned for its uplink is kept as it is."""
    for origin in ("incident_id", "signal_id"):
        mine = [r for r in rows if getattr(r, origin) is not None]
        if not mine:
            continue
        await conn.execute(
            "INSERT INTO gb28181_uplink_deliveries (uplink_id, incident_id, signal_id,"
            " channel_id, body) SELECT * FROM unnest(%s::text[], %s::bigint[], %s::bigint[],"
            f" %s::text[], %s::bytea[]) ON CONFLICT (uplink_id, {origin})"
            f" WHERE {origin} IS NOT NULL DO NOTHING",
            (
                [r.uplink_id for r in mine],
                [r.incident_id for r in mine],
                [r.signal_id for r in mine],
                [r.channel_id for r in mine],
                [r.body for r in mine],
            ),
        )


async def due_deliveries(
    conn: AsyncConnection[DictRow], uplink_ids: list[str], now: datetime, limit: int = 100
) -> list[Delivery]:
    cur = await conn.execute(
        "SELECT id, uplink_id, incident_id, signal_id, channel_id, body, attempts"
        " FROM gb28181_uplink_deliveries WHERE state = 'pending' AND next_at <= %s"
        " AND uplink_id = ANY(%s) ORDER BY id LIMIT %s",
        (now, uplink_ids, limit),
    )
    return [Delivery(**row) for row in await cur.fetchall()]


async def delivery_attempted(
    conn: AsyncConnection[DictRow],
    delivery: Delivery,
    *,
    status: int | None,
    error: str | None,
    now: datetime,
    retry_in: timedelta,
) -> None:
    """The upper's answer: 200 delivers, anything else is tried again after `retry_in`."""
    ok = status is not None and 200 <= status < 300
    await conn.execute(
        "UPDATE gb28181_uplink_deliveries SET attempts = attempts + 1, last_status = %s,"
        " last_error = %s, state = CASE WHEN %s THEN 'delivered' ELSE 'pending' END,"
        " delivered_at = CASE WHEN %s THEN %s END, next_at = %s WHERE id = %s",
        (status, error, ok, ok, now, now + retry_in, delivery.id),
    )
    await count_outcome(conn, delivery.uplink_id, ok=ok)


async def delivery_log(
    conn: AsyncConnection[DictRow], uplink_id: str, limit: int
) -> list[dict[str, Any]]:
    cur = await conn.execute(
        "SELECT incident_id, signal_id, channel_id, state, attempts, last_status, last_error,"
        " created_at, delivered_at FROM gb28181_uplink_deliveries WHERE uplink_id = %s"
        " ORDER BY id DESC LIMIT %s",
        (uplink_id, limit),
    )
    return list(await cur.fetchall())
