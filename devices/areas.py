"""Areas: queries over the `areas` table."""

from __future__ import annotations

from psycopg import AsyncConnection, errors
from psycopg.rows import DictRow

from devices.models import Area, AreaIn
from hub.area_codes import area_level, parent_code
from hub.db import fetch_model
from hub.errors import Conflict
from hub.paging import AREA_CODE, Page, decode_cursor, page_of

_COLUMNS = "code, name, parent_code, level, created_at"


async def create_area(conn: AsyncConnection[DictRow], data: AreaIn) -> Area:
    try:
        cur = await conn.execute(
            f"INSERT INTO areas (code, name, parent_code, level) VALUES (%s, %s, %s, %s)"
            f" RETURNING {_COLUMNS}",
            (data.code, data.name, parent_code(data.code), area_level(data.code).value),
        )
    except errors.UniqueViolation:
        raise Conflict(f"area {data.code} already exists", field="code") from None
    row = await cur.fetchone()
    assert row is not None
    return Area.model_validate(row)


async def get_area(conn: AsyncConnection[DictRow], code: str, *, scope: str) -> Area:
    return await fetch_model(
        conn,
        Area,
        f"SELECT {_COLUMNS} FROM areas WHERE code = %s AND code LIKE %s",
        (code, scope + "%"),
        missing=f"area {code} not found",
    )


async def list_areas(
    conn: AsyncConnection[DictRow],
    *,
    scope: str,
    parent: str | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Page[Area]:
    after = decode_cursor(cursor, shape=AREA_CODE)
    cur = await conn.execute(
        f"SELECT {_COLUMNS} FROM areas WHERE code LIKE %s AND code > %s"
        " AND (%s::text IS NULL OR parent_code = %s) ORDER BY code LIMIT %s",
        (scope + "%", after, parent, parent, limit + 1),
    )
    return page_of(Area, await cur.fetchall(), limit, key="code")


async def rename_area(conn: AsyncConnection[DictRow], code: str, name: str, *, scope: str) -> Area:
    return await fetch_model(
        conn,
        Area,
        f"UPDATE areas SET name = %s WHERE code = %s AND code LIKE %s RETURNING {_COLUMNS}",
        (name, code, scope + "%"),
        missing=f"area {code} not found",
    )


async def delete_area(conn: AsyncConnection[DictRow], code: str, *, scope: str) -> None:
    """Delete an area that nothing refers to any more."""
    await get_area(conn, code, scope=scope)
    cur = await conn.execute("SELECT 1 FROM areas WHERE parent_code = %s LIMIT 1", (code,))
    if await cur.fetchone():
        raise Conflict(f"area {code} still has child areas")
    try:
        async with conn.transaction():
            await conn.execute("DELETE FROM areas WHERE code = %s", (code,))
    except errors.ForeignKeyViolation:
        raise Conflict(f"area {code} still has devices or units") from None


async def areas_around(conn: AsyncConnection[DictRow], prefix: str) -> list[Area]:
    """The areas under `prefix`, and those it lies in (a street's district and city), from the
    top down."""
    cur = await conn.execute(
        f"SELECT {_COLUMNS} FROM areas WHERE code LIKE %s OR %s LIKE code || '%%'"
        " ORDER BY length(code), code",
        (prefix + "%", prefix),
    )
    return [Area.model_validate(row) for row in await cur.fetchall()]


async def existing_areas(conn: AsyncConnection[DictRow], codes: set[str]) -> set[str]:
    """Which of these area codes are registered."""
    cur = await conn.execute("SELECT code FROM areas WHERE code = ANY(%s)", (list(codes),))
    return {row["code"] for row in await cur.fetchall()}
