"""/api/v1/registers: each community's register of residents, for the ID-card verdicts
(`unregistered` when a community's register does not hold a card). Personal data: ID
numbers are hashed on arrival and never returned."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response

from api.auth import Principal
from api.deps import Conn, Cursor, DbPool, Limit
from api.openapi import refusals
from api.permissions import Capability, allowed
from api.uploads import csv_text
from devices.areas import existing_areas
from hub.errors import Conflict, Invalid, UnsupportedMediaType
from hub.paging import Page
from hub.secret import hmac_key
from idcard import registers
from idcard.registers import Register, RegisterIn, Resident, ResidentsIn, UploadReport

router = APIRouter(prefix="/registers", tags=["personal data"])
Keeper = Annotated[Principal, Depends(allowed(Capability.KEEP_REGISTERS))]
Community = Annotated[str, Path(pattern=r"^\d{12}$")]
IdHash = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")]


@router.post("", status_code=201, responses=refusals(Conflict))
async def create_register(body: RegisterIn, who: Keeper, conn: Conn) -> Register:
    """Start a community's register; from then on its reads are checked against it."""
    who.require_area(body.area)
    if not await existing_areas(conn, {body.area}):
        raise Invalid(f"area {body.area} is not registered", field="area")
    return await registers.create_register(conn, body)


@router.get("")
async def list_registers(who: Keeper, conn: Conn) -> list[Register]:
    return await registers.list_registers(conn, scope=who.area_prefix)


@router.get("/{area}")
async def get_register(area: Community, who: Keeper, conn: Conn) -> Register:
    return await registers.get_register(conn, area, scope=who.area_prefix)


@router.delete("/{area}", status_code=204)
async def delete_register(area: Community, who: Keeper, conn: Conn) -> Response:
    """The register and its residents; the community's reads are no longer `unregistered`."""
    await registers.delete_register(conn, area, scope=who.area_prefix)
    return Response(status_code=204)


@router.post("/{area}/residents")
async def add_residents(
    area: Community, body: ResidentsIn, request: Request, who: Keeper, conn: Conn
) -> UploadReport:
    """Add residents (or update their building and unit); a bad number is reported by its
    index and not stored."""
    rows = list(enumerate(body.residents))
    secret = hmac_key(request.app.state.settings)
    return await registers.add_residents(conn, area, rows, secret=secret, scope=who.area_prefix)


@router.post("/{area}/import", responses=refusals(UnsupportedMediaType))
async def import_residents(
    area: Community, request: Request, who: Keeper, pool: DbPool
) -> UploadReport:
    """Residents from CSV (`id_number,building,unit` with a header line), as the body
    (`Content-Type: text/csv`) or a multipart field `file`; rows refused by line number."""
    rows, problems = registers.parse_csv(await csv_text(request))
    secret = hmac_key(request.app.state.settings)
    # A connection of its own, taken once the body is read and checked (not `Conn`).
    async with pool.connection() as conn:
        return await registers.add_residents(
            conn, area, rows, secret=secret, scope=who.area_prefix, problems=problems
        )


@router.get("/{area}/residents")
async def list_residents(
    area: Community, who: Keeper, conn: Conn, limit: Limit = 100, cursor: Cursor = None
) -> Page[Resident]:
    """Masked numbers with building and unit, by hash."""
    return await registers.list_residents(
        conn, area, scope=who.area_prefix, limit=limit, cursor=cursor
    )


@router.delete("/{area}/residents/{id_hash}", status_code=204)
async def remove_resident(area: Community, id_hash: IdHash, who: Keeper, conn: Conn) -> Response:
    await registers.remove_resident(conn, area, id_hash, scope=who.area_prefix)
    return Response(status_code=204)
