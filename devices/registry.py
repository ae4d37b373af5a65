"""Devices: registration, placement, enabling, credential rotation."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection, errors, sql
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from devices.credentials import generate_password, hash_password, open_sealed, seal_password
from devices.models import (
    Credentials,
    Device,
    DeviceIn,
    DeviceType,
    DeviceUpdate,
    DeviceWithCredentials,
)
from hub.contracts import Signal
from hub.db import fetch_model, set_clause
from hub.errors import Conflict, Invalid
from hub.paging import Page, decode_cursor, page_of

# Tags that name a device on a carrier platform: unique, and resolved within the caller's area.
PLATFORM_TAGS = ("ctwing_id", "onenet_id", "imei")
COLUMNS = (
    "id, type, area, site, building, floor, lat, lon, tags, enabled,"
    " credentials_rotated_at, created_at, updated_at, gb_channel_id"
)
REGISTRY_CHANNEL = "sb_registry"


async def notify_registry_changed(conn: AsyncConnection[DictRow], device_id: str) -> None:
    """Tell listeners (the embedded broker's password file) once the transaction commits."""
    await conn.execute("SELECT pg_notify(%s, %s)", (REGISTRY_CHANNEL, device_id))


def _sip_secret(
    device_id: str, type: DeviceType, password: str, seal_key: bytes | None
) -> str | None:
    """A digest device's sealed password (devices.credentials); None for the others."""
    if type is not DeviceType.GB28181:
        return None
    if seal_key is None:
        raise Invalid("gb28181 devices are registered through the API", field="type")
    return seal_password(seal_key, device_id, password)


async def create_device(
    conn: AsyncConnection[DictRow], data: DeviceIn, *, seal_key: bytes | None = None
) -> DeviceWithCredentials:
    """Insert a device and return it with its credentials (MQTT, or the SIP digest password
    of a gb28181 device, sealed with `seal_key`), shown this once."""
    password = generate_password()
    try:
        cur = await conn.execute(
            f"""
            INSERT INTO devices (id, type, area, site, building, floor, lat, lon, tags,
                                 password_hash, sip_secret)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            RETURNING {COLUMNS}
            """,
            (
                data.id,
                data.type.value,
                data.area,
                data.site,
                data.building,
                data.floor,
                data.lat,
                data.lon,
                Jsonb(data.tags),
                hash_password(password),
                _sip_secret(data.id, data.type, password, seal_key),
            ),
        )
    except errors.UniqueViolation as exc:
        raise _conflict(exc, data.id) from None
    except errors.ForeignKeyViolation:
        raise Invalid(f"area {data.area} is not registered", field="area") from None
    row = await cur.fetchone()
    assert row is not None
    await notify_registry_changed(conn, data.id)
    return DeviceWithCredentials(
        **Device.model_validate(row).model_dump(),
        credentials=Credentials(username=data.id, password=password),
    )


async def create_devices_bulk(
    conn: AsyncConnection[DictRow], rows: list[DeviceIn], *, seal_key: bytes | None = None
) -> list[Credentials]:
    """Insert many validated devices in the caller's transaction; returns their credentials."""
    issued = [Credentials(username=row.id, password=generate_password()) for row in rows]
    async with conn.cursor() as cur:
        await cur.executemany(
            """
            INSERT INTO devices (id, type, area, site, building, floor, lat, lon, tags,
                                 password_hash, sip_secret)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            """,
            [
                (
                    row.id,
                    row.type.value,
                    row.area,
                    row.site,
                    row.building,
                    row.floor,
                    row.lat,
                    row.lon,
                    Jsonb(row.tags),
                    hash_password(creds.password),
                    _sip_secret(row.id, row.type, creds.password, seal_key),
                )
                for row, creds in zip(rows, issued, strict=True)
            ],
        )
    if rows:
        await notify_registry_changed(conn, "*")
    return issued


async def get_device(conn: AsyncConnection[DictRow], device_id: str, *, scope: str) -> Device:
    return await fetch_model(
        conn,
        Device,
        f"SELECT {COLUMNS} FROM devices WHERE id = %s AND area LIKE %s",
        (device_id, scope + "%"),
        missing=f"device {device_id} not found",
    )


async def enabled_devices(
    conn: AsyncConnection[DictRow], area_prefix: str, *, but: tuple[str, ...] = ()
) -> list[Device]:
    """The enabled devices under `area_prefix`, less those of the types `but`, by id."""
    cur = await conn.execute(
        f"SELECT {COLUMNS} FROM devices WHERE area LIKE %s AND enabled"
        " AND NOT type = ANY(%s) ORDER BY id",
        (area_prefix + "%", list(but)),
    )
    return [Device.model_validate(row) for row in await cur.fetchall()]


async def devices_by_id(
    conn: AsyncConnection[DictRow], device_ids: list[str], *, scope: str
) -> list[Device]:
    """Those of the devices that exist in scope, by id."""
    cur = await conn.execute(
        f"SELECT {COLUMNS} FROM devices WHERE id = ANY(%s) AND area LIKE %s ORDER BY id",
        (device_ids, scope + "%"),
    )
    return [Device.model_validate(row) for row in await cur.fetchall()]


async def list_devices(
    conn: AsyncConnection[DictRow],
    *,
    scope: str,
    area: str | None = None,
    type: DeviceType | None = None,
    enabled: bool | None = None,
    also: sql.Composable | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Page[Device]:
    """Devices in scope, optionally under an area prefix, by id. `also`: a further condition
    on the `devices` row from a package that knows more about devices (their state)."""
    after = decode_cursor(cursor)
    query = sql.SQL(
        f"""
        SELECT {COLUMNS} FROM devices
        WHERE area LIKE %s AND area LIKE %s AND id > %s
          AND (%s::text IS NULL OR type = %s)
          AND (%s::boolean IS NULL OR enabled = %s)
          AND {{also}}
        ORDER BY id LIMIT %s
        """
    ).format(also=also if also is not None else sql.SQL("true"))
    kind = type.value if type else None
    cur = await conn.execute(
        query, (scope + "%", (area or "") + "%", after, kind, kind, enabled, enabled, limit + 1)
    )
    return page_of(Device, await cur.fetchall(), limit)


async def update_device(
    conn: AsyncConnection[DictRow], device_id: str, changes: DeviceUpdate, *, scope: str
) -> Device:
    """Apply the fields the caller sent; `scope` must hold both the old and the new area."""
    await get_device(conn, device_id, scope=scope)
    fields = changes.model_dump(exclude_unset=True)
    if not fields:
        return await get_device(conn, device_id, scope=scope)
    values: dict[str, Any] = {
        key: Jsonb(value) if key == "tags" else value for key, value in fields.items()
    }
    query = sql.SQL(
        "UPDATE devices SET {}, updated_at = now() WHERE id = %(_id)s RETURNING " + COLUMNS
    ).format(set_clause(values))
    try:
        cur = await conn.execute(query, {**values, "_id": device_id})
    except errors.UniqueViolation as exc:
        raise _conflict(exc, device_id) from None
    except errors.ForeignKeyViolation:
        raise Invalid(f"area {changes.area} is not registered", field="area") from None
    row = await cur.fetchone()
    assert row is not None
    await notify_registry_changed(conn, device_id)
    return Device.model_validate(row)


async def rotate_credentials(
    conn: AsyncConnection[DictRow], device_id: str, *, scope: str, seal_key: bytes | None = None
) -> Credentials:
    """Replace a device's password; the old one stops working at the broker's next reload
    (a gb28181 device's at its next REGISTER)."""
    device = await get_device(conn, device_id, scope=scope)
    password = generate_password()
    await conn.execute(
        "UPDATE devices SET password_hash = %s, sip_secret = %s, credentials_rotated_at = now(),"
        " updated_at = now() WHERE id = %s",
        (
            hash_password(password),
            _sip_secret(device_id, device.type, password, seal_key),
            device_id,
        ),
    )
    await notify_registry_changed(conn, device_id)
    return Credentials(username=device_id, password=password)


async def delete_device(conn: AsyncConnection[DictRow], device_id: str, *, scope: str) -> None:
    await get_device(conn, device_id, scope=scope)
    await conn.execute("DELETE FROM devices WHERE id = %s", (device_id,))
    await notify_registry_changed(conn, device_id)


def _conflict(exc: errors.UniqueViolation, device_id: str) -> Conflict:
    """409 for a taken id, or for a platform identity another device has (not saying which
    device or where: it may lie outside the caller's area)."""
    constraint = exc.diag.constraint_name or ""
    for tag in PLATFORM_TAGS:
        if constraint == f"devices_{tag}_key":
            return Conflict(f"another device is registered with this {tag}", field=f"tags.{tag}")
    return Conflict(f"device {device_id} already exists", field="id")


async def taken_platform_ids(
    conn: AsyncConnection[DictRow], wanted: list[tuple[str, str]]
) -> set[tuple[str, str]]:
    """Which of these (tag, value) platform identities a device has already."""
    if not wanted:
        return set()
    cur = await conn.execute(
        "SELECT w.tag, w.value FROM unnest(%s::text[], %s::text[]) AS w(tag, value)"
        " WHERE EXISTS (SELECT 1 FROM devices d WHERE d.tags ->> w.tag = w.value)",
        ([t for t, _ in wanted], [v for _, v in wanted]),
    )
    return {(row["tag"], row["value"]) for row in await cur.fetchall()}


async def existing_ids(conn: AsyncConnection[DictRow], ids: list[str]) -> set[str]:
    """Which of these ids are taken already."""
    cur = await conn.execute("SELECT id FROM devices WHERE id = ANY(%s)", (ids,))
    return {row["id"] for row in await cur.fetchall()}


async def broker_accounts(conn: AsyncConnection[DictRow]) -> list[tuple[str, str]]:
    """(username, password hash) of every enabled device, for the broker's password file."""
    cur = await conn.execute(
        "SELECT id, password_hash FROM devices WHERE enabled AND type <> 'gb28181' ORDER BY id"
    )
    return [(row["id"], row["password_hash"]) for row in await cur.fetchall()]


@dataclass(frozen=True, slots=True)
class DeviceRef:
    """What ingest needs to know about a device to accept its messages."""

    id: str
    type: str
    area: str
    site: str | None
    building: str | None
    enabled: bool
    tags: dict[str, Any] = field(default_factory=dict)
    registered_at: datetime | None = None
    floor: str | None = None  # travels with the device's signals to their incidents

    def signal(
        self,
        ts: datetime,
        kind: str,
        value: float | None = None,
        attrs: dict[str, Any] | None = None,
        *,
        confidence: float = 1.0,
    ) -> Signal:
        """A signal about this device at `ts`, its event time; None attrs are dropped. Its
        place (area, site, building, floor) and tags are the registry's, never the payload's."""
        return Signal(
            ts=ts,
            kind=kind,
            source_id=self.id,
            source_type=self.type,
            area=self.area,
            site=self.site,
            building=self.building,
            floor=self.floor,
            value=value,
            confidence=confidence,
            attrs={k: v for k, v in (attrs or {}).items() if v is not None},
            tags=self.tags,
        )


_REF_COLUMNS = "id, type, area, site, building, floor, enabled, tags, created_at AS registered_at"


async def device_refs(
    conn: AsyncConnection[DictRow], ids: list[str] | None = None, *, scope: str = ""
) -> list[DeviceRef]:
    """All devices in `scope`, or those of them with these ids."""
    cur = await conn.execute(
        f"SELECT {_REF_COLUMNS} FROM devices WHERE (%s::text[] IS NULL OR id = ANY(%s))"
        " AND area LIKE %s",
        (ids, ids, scope + "%"),
    )
    return [DeviceRef(**row) for row in await cur.fetchall()]


async def find_by_tag(
    conn: AsyncConnection[DictRow], key: str, value: str, *, scope: str
) -> DeviceRef | None:
    """The device in `scope` whose tag `key` equals `value` (a carrier platform's id, an
    IMEI): unique for the platform tags."""
    cur = await conn.execute(
        f"SELECT {_REF_COLUMNS} FROM devices WHERE tags ->> %s = %s AND area LIKE %s"
        " ORDER BY id LIMIT 1",
        (key, value, scope + "%"),
    )
    row = await cur.fetchone()
    return DeviceRef(**row) if row else None


async def sip_password(
    conn: AsyncConnection[DictRow], device_id: str, seal_key: bytes
) -> tuple[DeviceRef, str] | None:
    """An enabled gb28181 device and its digest password; None for any other id."""
    cur = await conn.execute(
        f"SELECT {_REF_COLUMNS}, sip_secret FROM devices"
        " WHERE id = %s AND type = 'gb28181' AND enabled AND sip_secret IS NOT NULL",
        (device_id,),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    sealed = row.pop("sip_secret")
    password = open_sealed(seal_key, device_id, sealed)
    return (DeviceRef(**row), password) if password is not None else None


async def merge_tags(conn: AsyncConnection[DictRow], device_id: str, tags: dict[str, Any]) -> None:
    """Set these tags on a device, keeping its others (what a device said of itself)."""
    await conn.execute(
        "UPDATE devices SET tags = tags || %s, updated_at = now() WHERE id = %s",
        (Jsonb(tags), device_id),
    )
    await notify_registry_changed(conn, device_id)


GB_CATALOG_CHANNEL = "sb_gb_catalog"  # NOTIFY: query this GB/T 28181 device's catalog again


async def request_catalog(conn: AsyncConnection[DictRow], device_id: str, *, scope: str) -> None:
    """Ask the GB/T 28181 process to query the device's catalog (at commit); 422 for a
    device of another type."""
    device = await get_device(conn, device_id, scope=scope)
    if device.type is not DeviceType.GB28181:
        raise Invalid(f"device {device_id} is a {device.type.value}, not gb28181", field="id")
    await conn.execute("SELECT pg_notify(%s, %s)", (GB_CATALOG_CHANNEL, device_id))
