"""Cameras: a device of type `camera` plus its stream and analytics zones."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from psycopg import AsyncConnection, sql
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from devices.credentials import generate_password, hash_password
from devices.models import (
    Camera,
    CameraIn,
    CameraUpdate,
    CameraWithCredentials,
    DeviceIn,
    DeviceType,
    DeviceUpdate,
)
from devices.registry import (
    COLUMNS,
    DeviceRef,
    create_device,
    get_device,
    notify_registry_changed,
    update_device,
)
from devices.zones import Zone
from hub.db import fetch_model, set_clause
from hub.errors import NotFound
from hub.paging import Page, decode_cursor, page_of

# A GB/T 28181 channel's stream: its media comes over GB/T 28181 (a later issue), not a URL.
GB_STREAM_SCHEME = "gb28181://"
_SELECT = (
    "SELECT "
    + ", ".join(f"d.{c.strip()}" for c in COLUMNS.split(","))
    + ", c.stream_url, c.detect_url, c.fps, c.zones, c.settings FROM devices d"
    " JOIN cameras c ON c.device_id = d.id"
)


def redact_stream_url(url: str) -> str:
    """Hide a password embedded in a stream URL (rtsp://user:pass@host/...)."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def public_view(camera: Camera) -> Camera:
    """The camera as API responses show it: no stream password."""
    detect = camera.detect_url and redact_stream_url(camera.detect_url)
    return camera.model_copy(
        update={"stream_url": redact_stream_url(camera.stream_url), "detect_url": detect}
    )


async def create_camera(conn: AsyncConnection[DictRow], data: CameraIn) -> CameraWithCredentials:
    device = await create_device(
        conn,
        DeviceIn(
            id=data.id,
            type=DeviceType.CAMERA,
            area=data.area,
            site=data.site,
            building=data.building,
            floor=data.floor,
            lat=data.lat,
            lon=data.lon,
            tags=data.tags,
        ),
    )
    await conn.execute(
        "INSERT INTO cameras (device_id, stream_url, detect_url, fps, zones, settings)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (
            data.id,
            data.stream_url,
            data.detect_url,
            data.fps,
            Jsonb([z.model_dump(mode="json") for z in data.zones]),
            Jsonb(data.settings.model_dump(mode="json", exclude_defaults=True)),
        ),
    )
    camera = await get_camera(conn, data.id, scope="")
    return CameraWithCredentials(**camera.model_dump(), credentials=device.credentials)


async def get_camera(conn: AsyncConnection[DictRow], camera_id: str, *, scope: str) -> Camera:
    return await fetch_model(
        conn,
        Camera,
        f"{_SELECT} WHERE d.id = %s AND d.area LIKE %s",
        (camera_id, scope + "%"),
        missing=f"camera {camera_id} not found",
    )


async def list_cameras(
    conn: AsyncConnection[DictRow],
    *,
    scope: str,
    area: str | None = None,
    enabled: bool | None = None,
    device_id: str | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Page[Camera]:
    """Cameras in scope by id; `device_id`: the channels of that GB/T 28181 device."""
    after = decode_cursor(cursor)
    cur = await conn.execute(
        f"{_SELECT} WHERE d.area LIKE %s AND d.area LIKE %s AND d.id > %s"
        " AND (%s::boolean IS NULL OR d.enabled = %s)"
        " AND (%s::text IS NULL OR d.tags ->> 'gb_device' = %s) ORDER BY d.id LIMIT %s",
        (scope + "%", (area or "") + "%", after, enabled, enabled, device_id, device_id, limit + 1),
    )
    return page_of(Camera, await cur.fetchall(), limit)


async def update_camera(
    conn: AsyncConnection[DictRow], camera_id: str, changes: CameraUpdate, *, scope: str
) -> Camera:
    await get_camera(conn, camera_id, scope=scope)
    stream = changes.model_dump(exclude_unset=True, include={"stream_url", "detect_url", "fps"})
    if changes.settings is not None:
        stream["settings"] = Jsonb(changes.settings.model_dump(mode="json", exclude_defaults=True))
    placement = changes.model_dump(
        exclude_unset=True, exclude={"stream_url", "detect_url", "fps", "settings"}
    )
    if placement:
        await update_device(conn, camera_id, DeviceUpdate(**placement), scope=scope)
    if stream:
        query = sql.SQL("UPDATE cameras SET {} WHERE device_id = %(_id)s").format(
            set_clause(stream)
        )
        await conn.execute(query, {**stream, "_id": camera_id})
        await conn.execute("UPDATE devices SET updated_at = now() WHERE id = %s", (camera_id,))
    return await get_camera(conn, camera_id, scope=scope)


async def set_zones(
    conn: AsyncConnection[DictRow], camera_id: str, zones: list[Zone], *, scope: str
) -> Camera:
    """Replace a camera's zones as a whole."""
    await get_device(conn, camera_id, scope=scope)
    cur = await conn.execute(
        "UPDATE cameras SET zones = %s WHERE device_id = %s",
        (Jsonb([z.model_dump(mode="json") for z in zones]), camera_id),
    )
    if cur.rowcount == 0:
        raise NotFound(f"camera {camera_id} not found")
    await conn.execute("UPDATE devices SET updated_at = now() WHERE id = %s", (camera_id,))
    return await get_camera(conn, camera_id, scope=scope)


async def enabled_cameras(conn: AsyncConnection[DictRow]) -> list[Camera]:
    """Every enabled camera, in id order: what the vision workers share out."""
    cur = await conn.execute(f"{_SELECT} WHERE d.enabled ORDER BY d.id")
    return [Camera.model_validate(row) for row in await cur.fetchall()]


# --- cameras from a GB/T 28181 device's catalog ---------------------------------------------


@dataclass(frozen=True, slots=True)
class CatalogCamera:
    """A video channel of a GB/T 28181 device, as its catalog describes it."""

    id: str
    tags: dict[str, Any]  # gb_device (the parent), gb_name, gb_manufacturer, gb_status...
    lat: float | None = None
    lon: float | None = None


async def upsert_catalog_cameras(
    conn: AsyncConnection[DictRow], parent: DeviceRef, cameras: list[CatalogCamera]
) -> int:
    """Create or refresh the parent's channel cameras; a new one takes the parent's area, site
    and building (so place rules and confirmations see it where the device is), which later
    catalogs leave as people set them. A camera of that id that belongs to someone else is
    left alone. Zones and settings are kept. How many changed."""
    changed = 0
    parent_id = parent.id
    for cam in cameras:
        cur = await conn.execute(
            "INSERT INTO devices (id, type, area, site, building, lat, lon, tags, password_hash)"
            " VALUES (%s, 'camera', %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (id) DO UPDATE SET tags = devices.tags || excluded.tags,"
            " lat = coalesce(excluded.lat, devices.lat), lon = coalesce(excluded.lon, devices.lon),"
            " updated_at = now() WHERE devices.tags ->> 'gb_device' = %s",
            (
                cam.id,
                parent.area,
                parent.site,
                parent.building,
                cam.lat,
                cam.lon,
                Jsonb({**cam.tags, "gb_device": parent_id}),
                hash_password(generate_password()),
                parent_id,
            ),
        )
        if cur.rowcount:
            changed += 1
            await conn.execute(
                "INSERT INTO cameras (device_id, stream_url, fps) VALUES (%s, %s, 2.0)"
                " ON CONFLICT (device_id) DO NOTHING",
                (cam.id, GB_STREAM_SCHEME + cam.id),
            )
    if changed:
        await notify_registry_changed(conn, "*")
    return changed


async def drop_catalog_cameras(
    conn: AsyncConnection[DictRow], parent_id: str, camera_ids: list[str]
) -> None:
    """A catalog DEL: the parent's cameras of these ids go."""
    await conn.execute(
        "DELETE FROM devices WHERE id = ANY(%s) AND tags ->> 'gb_device' = %s",
        (camera_ids, parent_id),
    )
    await notify_registry_changed(conn, "*")


async def catalog_camera_ids(conn: AsyncConnection[DictRow], parent_id: str) -> list[str]:
    cur = await conn.execute(
        "SELECT id FROM devices WHERE tags ->> 'gb_device' = %s ORDER BY id", (parent_id,)
    )
    return [row["id"] for row in await cur.fetchall()]
