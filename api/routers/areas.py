"""/api/v1/areas"""

from __future__ import annotations

from fastapi import APIRouter, Response

from api.deps import Conn, Limit, Reader, Registrar
from api.openapi import refusals
from devices import areas
from devices.models import Area, AreaIn, AreaUpdate
from hub.area_codes import check_area_code
from hub.errors import Conflict, Invalid
from hub.paging import Page

router = APIRouter(prefix="/areas", tags=["areas"])


def _code(code: str) -> str:
    try:
        return check_area_code(code)
    except ValueError as exc:
        raise Invalid(str(exc), field="code") from None


@router.post("", status_code=201, responses=refusals(Conflict))
async def create_area(body: AreaIn, who: Registrar, conn: Conn) -> Area:
    who.require_area(body.code)
    return await areas.create_area(conn, body)


@router.get("")
async def list_areas(
    who: Reader,
    conn: Conn,
    parent: str | None = None,
    limit: Limit = 100,
    cursor: str | None = None,
) -> Page[Area]:
    return await areas.list_areas(
        conn, scope=who.area_prefix, parent=parent, limit=limit, cursor=cursor
    )


@router.get("/{code}")
async def get_area(code: str, who: Reader, conn: Conn) -> Area:
    return await areas.get_area(conn, _code(code), scope=who.area_prefix)


@router.patch("/{code}")
async def rename_area(code: str, body: AreaUpdate, who: Registrar, conn: Conn) -> Area:
    return await areas.rename_area(conn, _code(code), body.name, scope=who.area_prefix)


@router.delete("/{code}", status_code=204, responses=refusals(Conflict))
async def delete_area(code: str, who: Registrar, conn: Conn) -> Response:
    await areas.delete_area(conn, _code(code), scope=who.area_prefix)
    return Response(status_code=204)
