"""Response units: who can be dispatched, where they are, what they handle."""

from __future__ import annotations

from psycopg import AsyncConnection, errors, sql
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from devices.models import Unit, UnitIn, UnitKind, UnitUpdate
from hub.db import fetch_model, set_clause
from hub.errors import Conflict, Invalid, NotFound
from hub.paging import Page, decode_cursor, page_of

_COLUMNS = (
    "id, name, kind, area, lat, lon, categories, on_duty, contacts, parent_id, created_at,"
    " updated_at"
)


def _missing(exc: errors.ForeignKeyViolation, area: str | None, parent: str | None) -> Invalid:
    """Which reference was not there: the area, or the parent unit."""
    if exc.diag.constraint_name == "units_parent_id_fkey":
        return Invalid(f"no unit {parent} to be the parent", field="parent_id")
    return Invalid(f"area {area} is not registered", field="area")


async def check_parent(
    conn: AsyncConnection[DictRow], parent_id: str | None, *, scope: str
) -> None:
    """A parent organisation is a unit the caller can see."""
    if parent_id is None:
        return
    try:
        await get_unit(conn, parent_id, scope=scope)
    except NotFound:
        raise Invalid(f"no unit {parent_id} in your area", field="parent_id") from None


async def create_unit(conn: AsyncConnection[DictRow], data: UnitIn) -> Unit:
    try:
        cur = await conn.execute(
            f"INSERT INTO units (id, name, kind, area, lat, lon, categories, on_duty, contacts,"
            f" parent_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}",
            (
                data.id,
                data.name,
                data.kind.value,
                data.area,
                data.lat,
                data.lon,
                sorted(set(data.categories)),
                data.on_duty,
                Jsonb(data.contacts.model_dump()),
                data.parent_id,
            ),
        )
    except errors.UniqueViolation:
        raise Conflict(f"unit {data.id} already exists", field="id") from None
    except errors.ForeignKeyViolation as exc:
        raise _missing(exc, data.area, data.parent_id) from None
    except errors.CheckViolation:
        raise Invalid("a unit cannot be its own parent", field="parent_id") from None
    row = await cur.fetchone()
    assert row is not None
    return Unit.model_validate(row)


async def get_unit(conn: AsyncConnection[DictRow], unit_id: str, *, scope: str) -> Unit:
    return await fetch_model(
        conn,
        Unit,
        f"SELECT {_COLUMNS} FROM units WHERE id = %s AND area LIKE %s",
        (unit_id, scope + "%"),
        missing=f"unit {unit_id} not found",
    )


async def list_units(
    conn: AsyncConnection[DictRow],
    *,
    scope: str,
    area: str | None = None,
    category: str | None = None,
    on_duty: bool | None = None,
    kind: UnitKind | None = None,
    above: bool = False,
    limit: int = 100,
    cursor: str | None = None,
) -> Page[Unit]:
    """`above`: also the units over the caller's area (a district's departments, which a
    street summons)."""
    after = decode_cursor(cursor)
    cur = await conn.execute(
        f"""
        SELECT {_COLUMNS} FROM units
        WHERE (area LIKE %s OR (%s AND %s LIKE area || '%%')) AND area LIKE %s AND id > %s
          AND (%s::text IS NULL OR %s = ANY(categories))
          AND (%s::boolean IS NULL OR on_duty = %s)
          AND (%s::text IS NULL OR kind = %s)
        ORDER BY id LIMIT %s
        """,
        (
            scope + "%",
            above,
            scope,
            (area or "") + "%",
            after,
            category,
            category,
            on_duty,
            on_duty,
            kind and kind.value,
            kind and kind.value,
            limit + 1,
        ),
    )
    return page_of(Unit, await cur.fetchall(), limit)


async def update_unit(
    conn: AsyncConnection[DictRow], unit_id: str, changes: UnitUpdate, *, scope: str
) -> Unit:
    await get_unit(conn, unit_id, scope=scope)
    fields = changes.model_dump(exclude_unset=True)
    if "categories" in fields:
        fields["categories"] = sorted(set(fields["categories"]))
    if fields.get("contacts") is not None:
        fields["contacts"] = Jsonb(fields["contacts"])
    elif "contacts" in fields:
        del fields["contacts"]
    if not fields:
        return await get_unit(conn, unit_id, scope=scope)
    query = sql.SQL(
        "UPDATE units SET {}, updated_at = now() WHERE id = %(_id)s RETURNING " + _COLUMNS
    ).format(set_clause(fields))
    try:
        cur = await conn.execute(query, {**fields, "_id": unit_id})
    except errors.ForeignKeyViolation as exc:
        raise _missing(exc, changes.area, changes.parent_id) from None
    except errors.CheckViolation:
        raise Invalid("a unit cannot be its own parent", field="parent_id") from None
    row = await cur.fetchone()
    assert row is not None
    return Unit.model_validate(row)


async def delete_unit(conn: AsyncConnection[DictRow], unit_id: str, *, scope: str) -> None:
    await get_unit(conn, unit_id, scope=scope)
    await conn.execute("DELETE FROM units WHERE id = %s", (unit_id,))


async def unit_names(conn: AsyncConnection[DictRow], unit_ids: list[str]) -> dict[str, str]:
    """The names of those of these units that exist, by id."""
    cur = await conn.execute("SELECT id, name FROM units WHERE id = ANY(%s)", (unit_ids,))
    return {row["id"]: row["name"] for row in await cur.fetchall()}


async def nearest_unit(
    conn: AsyncConnection[DictRow], *, category: str, lat: float, lon: float, area_prefix: str
) -> Unit | None:
    """The closest on-duty unit that handles `category`, among units under `area_prefix`."""
    cur = await conn.execute(
        f"""
        SELECT {_COLUMNS} FROM units
        WHERE on_duty AND %(category)s = ANY(categories) AND area LIKE %(prefix)s
          AND lat IS NOT NULL AND lon IS NOT NULL
        ORDER BY 2 * 6371.0088 * asin(sqrt(
                   power(sin(radians(lat - %(lat)s) / 2), 2)
                   + cos(radians(%(lat)s)) * cos(radians(lat))
                     * power(sin(radians(lon - %(lon)s) / 2), 2))), id
        LIMIT 1
        """,
        {"category": category, "prefix": area_prefix + "%", "lat": lat, "lon": lon},
    )
    row = await cur.fetchone()
    return Unit.model_validate(row) if row else None
