"""/api/v1/units"""

from __future__ import annotations

from fastapi import APIRouter, Response

from api.deps import AreaFilter, DbPool, Limit, Reader, UnitWriter
from devices import units
from devices.models import Unit, UnitIn, UnitUpdate
from devices.paging import Page

router = APIRouter(prefix="/units", tags=["units"])


@router.post("", status_code=201)
async def create_unit(body: UnitIn, who: UnitWriter, pool: DbPool) -> Unit:
    who.require_area(body.area)
    async with pool.connection() as conn:
        return await units.create_unit(conn, body)


@router.get("")
async def list_units(
    who: Reader,
    pool: DbPool,
    area: AreaFilter = None,
    category: str | None = None,
    on_duty: bool | None = None,
    limit: Limit = 100,
    cursor: str | None = None,
) -> Page[Unit]:
    async with pool.connection() as conn:
        return await units.list_units(
            conn,
            scope=who.area_prefix,
            area=area,
            category=category,
            on_duty=on_duty,
            limit=limit,
            cursor=cursor,
        )


@router.get("/{unit_id}")
async def get_unit(unit_id: str, who: Reader, pool: DbPool) -> Unit:
    async with pool.connection() as conn:
        return await units.get_unit(conn, unit_id, scope=who.area_prefix)


@router.patch("/{unit_id}")
async def update_unit(unit_id: str, body: UnitUpdate, who: UnitWriter, pool: DbPool) -> Unit:
    """Change a unit's details or put it on or off duty."""
    if body.area is not None:
        who.require_area(body.area)
    async with pool.connection() as conn:
        return await units.update_unit(conn, unit_id, body, scope=who.area_prefix)


@router.delete("/{unit_id}", status_code=204)
async def delete_unit(unit_id: str, who: UnitWriter, pool: DbPool) -> Response:
    async with pool.connection() as conn:
        await units.delete_unit(conn, unit_id, scope=who.area_prefix)
    return Response(status_code=204)
