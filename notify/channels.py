"""Channels in PostgreSQL: scoped by the owner's area; the secret goes in and never comes out
(only the sender reads it, through `channel_config`)."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection, errors
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from hub.errors import Conflict, NotFound
from hub.paging import Page, decode_cursor, page_with
from notify.models import Channel, ChannelIn

_COLUMNS = "id, name, kind, area, url, secret, settings, enabled, created_at, updated_at"


def _shown(row: dict[str, Any]) -> Channel:
    settings = row["settings"]
    return Channel(
        id=row["id"],
        name=row["name"],
        kind=row["kind"],
        area=row["area"],
        url=row["url"],
        has_secret=row["secret"] is not None,
        mentions=settings.get("mentions") or {},
        email=settings.get("email"),
        language=settings.get("language", "zh-CN"),
        rate_per_minute=settings.get("rate_per_minute"),
        enabled=row["enabled"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _config(row: dict[str, Any]) -> ChannelIn:
    return ChannelIn(
        id=row["id"],
        name=row["name"],
        kind=row["kind"],
        area=row["area"],
        url=row["url"],
        secret=row["secret"],
        enabled=row["enabled"],
        **row["settings"],
    )


async def create_channel(conn: AsyncConnection[DictRow], data: ChannelIn) -> Channel:
    secret = data.secret.get_secret_value() if data.secret else None
    try:
        cur = await conn.execute(
            f"INSERT INTO channels (id, name, kind, area, url, secret, settings, enabled)"
            f" VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}",
            (
                data.id,
                data.name,
                data.kind,
                data.area,
                data.url,
                secret,
                Jsonb(data.settings()),
                data.enabled,
            ),
        )
    except errors.UniqueViolation:
        raise Conflict(f"channel {data.id} already exists", field="id") from None
    row = await cur.fetchone()
    assert row is not None
    return _shown(row)


async def _row(conn: AsyncConnection[DictRow], channel_id: str, *, scope: str) -> dict[str, Any]:
    cur = await conn.execute(
        f"SELECT {_COLUMNS} FROM channels WHERE id = %s AND area LIKE %s", (channel_id, scope + "%")
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"channel {channel_id} not found", field="id")
    return row


async def get_channel(conn: AsyncConnection[DictRow], channel_id: str, *, scope: str) -> Channel:
    return _shown(await _row(conn, channel_id, scope=scope))


async def list_channels(
    conn: AsyncConnection[DictRow], *, scope: str, limit: int = 100, cursor: str | None = None
) -> Page[Channel]:
    """The channels of the caller's area, by id, a page at a time (secrets left out)."""
    cur = await conn.execute(
        f"SELECT {_COLUMNS} FROM channels WHERE area LIKE %s AND id > %s ORDER BY id LIMIT %s",
        (scope + "%", decode_cursor(cursor), limit + 1),
    )
    return page_with(_shown, await cur.fetchall(), limit)


async def replace_channel(
    conn: AsyncConnection[DictRow], data: ChannelIn, *, scope: str
) -> Channel:
    """Store the new document; a document without `secret` keeps the one stored."""
    await _row(conn, data.id, scope=scope)
    secret = data.secret.get_secret_value() if data.secret else None
    cur = await conn.execute(
        f"UPDATE channels SET name = %s, kind = %s, area = %s, url = %s,"
        f" secret = coalesce(%s, secret), settings = %s, enabled = %s, updated_at = now()"
        f" WHERE id = %s RETURNING {_COLUMNS}",
        (
            data.name,
            data.kind,
            data.area,
            data.url,
            secret,
            Jsonb(data.settings()),
            data.enabled,
            data.id,
        ),
    )
    row = await cur.fetchone()
    assert row is not None
    return _shown(row)


async def delete_channel(conn: AsyncConnection[DictRow], channel_id: str, *, scope: str) -> None:
    await _row(conn, channel_id, scope=scope)
    await conn.execute("DELETE FROM channels WHERE id = %s", (channel_id,))


async def visible_ids(conn: AsyncConnection[DictRow], ids: list[str], *, scope: str) -> set[str]:
    """Which of these channels exist within `scope`."""
    cur = await conn.execute(
        "SELECT id FROM channels WHERE id = ANY(%s) AND area LIKE %s", (ids, scope + "%")
    )
    return {row["id"] for row in await cur.fetchall()}


async def channel_configs(conn: AsyncConnection[DictRow], ids: list[str]) -> dict[str, ChannelIn]:
    """The sender's view: every field, the secret included."""
    cur = await conn.execute(f"SELECT {_COLUMNS} FROM channels WHERE id = ANY(%s)", (ids,))
    return {row["id"]: _config(row) for row in await cur.fetchall()}
