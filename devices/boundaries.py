"""Area boundaries and building footprints (一张图): kept with the areas they outline, read and
written within the caller's scope like the areas themselves (an area outside it is not
found), and served together as one GeoJSON layer for the map."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from psycopg import AsyncConnection, errors
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb
from pydantic import BaseModel

from devices.areas import get_area
from devices.geojson import Building, Outline
from hub.area_codes import AreaLevel
from hub.errors import Invalid, NotFound


class AreaBoundary(BaseModel):
    code: str
    name: str
    level: AreaLevel
    boundary: Outline
    updated_at: datetime


class AreaBuildings(BaseModel):
    code: str
    name: str
    buildings: list[Building]
    updated_at: datetime


class MapProperties(BaseModel):
    kind: Literal["area", "building"]
    name: str
    code: str  # the area's; a building's community
    level: AreaLevel = AreaLevel.COMMUNITY


class MapFeature(BaseModel):
    type: Literal["Feature"] = "Feature"
    geometry: Outline
    properties: MapProperties


class MapLayer(BaseModel):
    """The boundaries and buildings under an area, as one GeoJSON FeatureCollection: larger
    areas first (a district, then its streets, then their communities), then buildings, so
    that what is drawn later lies on top."""

    type: Literal["FeatureCollection"] = "FeatureCollection"
    features: list[MapFeature]


async def set_boundary(
    conn: AsyncConnection[DictRow], code: str, boundary: Outline, *, scope: str
) -> AreaBoundary:
    area = await get_area(conn, code, scope=scope)
    try:
        cur = await conn.execute(
            "INSERT INTO area_boundaries (area_code, boundary) VALUES (%s, %s)"
            " ON CONFLICT (area_code) DO UPDATE SET boundary = EXCLUDED.boundary,"
            " updated_at = now() RETURNING updated_at",
            (code, Jsonb(boundary.model_dump())),
        )
    except errors.ForeignKeyViolation:  # the area went away meanwhile
        raise NotFound(f"area {code} not found") from None
    row = await cur.fetchone()
    assert row is not None
    return AreaBoundary(
        code=code,
        name=area.name,
        level=area.level,
        boundary=boundary,
        updated_at=row["updated_at"],
    )


async def get_boundary(conn: AsyncConnection[DictRow], code: str, *, scope: str) -> AreaBoundary:
    area = await get_area(conn, code, scope=scope)
    cur = await conn.execute(
        "SELECT boundary, updated_at FROM area_boundaries WHERE area_code = %s", (code,)
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"area {code} has no boundary yet")
    return AreaBoundary(code=code, name=area.name, level=area.level, **row)


async def delete_boundary(conn: AsyncConnection[DictRow], code: str, *, scope: str) -> None:
    await get_area(conn, code, scope=scope)
    cur = await conn.execute("DELETE FROM area_boundaries WHERE area_code = %s", (code,))
    if cur.rowcount == 0:
        raise NotFound(f"area {code} has no boundary")


async def set_buildings(
    conn: AsyncConnection[DictRow], code: str, buildings: list[Building], *, scope: str
) -> AreaBuildings:
    area = await get_area(conn, code, scope=scope)
    if area.level is not AreaLevel.COMMUNITY:
        raise Invalid(
            f"buildings belong to a community (12 digits); {code} is a {area.level.value}",
            field="code",
        )
    stored = Jsonb([b.model_dump() for b in buildings])
    try:
        cur = await conn.execute(
            "INSERT INTO area_buildings (area_code, buildings) VALUES (%s, %s)"
            " ON CONFLICT (area_code) DO UPDATE SET buildings = EXCLUDED.buildings,"
            " updated_at = now() RETURNING updated_at",
            (code, stored),
        )
    except errors.ForeignKeyViolation:
        raise NotFound(f"area {code} not found") from None
    row = await cur.fetchone()
    assert row is not None
    return AreaBuildings(
        code=code, name=area.name, buildings=buildings, updated_at=row["updated_at"]
    )


async def get_buildings(conn: AsyncConnection[DictRow], code: str, *, scope: str) -> AreaBuildings:
    area = await get_area(conn, code, scope=scope)
    cur = await conn.execute(
        "SELECT buildings, updated_at FROM area_buildings WHERE area_code = %s", (code,)
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"area {code} has no buildings yet")
    return AreaBuildings(code=code, name=area.name, **row)


async def delete_buildings(conn: AsyncConnection[DictRow], code: str, *, scope: str) -> None:
    await get_area(conn, code, scope=scope)
    cur = await conn.execute("DELETE FROM area_buildings WHERE area_code = %s", (code,))
    if cur.rowcount == 0:
        raise NotFound(f"area {code} has no buildings")


async def map_layer(
    conn: AsyncConnection[DictRow], *, scope: str, area: str | None = None
) -> MapLayer:
    """Every boundary and building under `scope` (and `area`, a further prefix)."""
    params = (scope + "%", (area or "") + "%")
    cur = await conn.execute(
        "SELECT a.code, a.name, a.level, b.boundary FROM area_boundaries b"
        " JOIN areas a ON a.code = b.area_code WHERE a.code LIKE %s AND a.code LIKE %s"
        " ORDER BY length(a.code), a.code",
        params,
    )
    features = [
        MapFeature(
            geometry=row["boundary"],
            properties=MapProperties(
                kind="area", name=row["name"], code=row["code"], level=row["level"]
            ),
        )
        for row in await cur.fetchall()
    ]
    cur = await conn.execute(
        "SELECT area_code, buildings FROM area_buildings"
        " WHERE area_code LIKE %s AND area_code LIKE %s ORDER BY area_code",
        params,
    )
    for row in await cur.fetchall():
        features.extend(
            MapFeature(
                geometry=b["geometry"],
                properties=MapProperties(kind="building", name=b["name"], code=row["area_code"]),
            )
            for b in row["buildings"]
        )
    return MapLayer(features=features)
