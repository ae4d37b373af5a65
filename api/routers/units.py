"""/api/v1/units"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from psycopg import AsyncConnection
from psycopg.rows import DictRow

from api.auth import Principal
from api.deps import AreaFilter, Conn, Limit, Reader
from api.openapi import refusals
from api.permissions import Capability, allowed
from devices import units
from devices.models import Unit, UnitContacts, UnitIn, UnitKind, UnitUpdate
from hub.errors import Conflict, Invalid
from hub.paging import Page
from notify.channels import visible_ids

router = APIRouter(prefix="/units", tags=["units"])
UnitWriter = Annotated[Principal, Depends(allowed(Capability.MANAGE_UNITS))]


async def _check_contacts(
    conn: AsyncConnection[DictRow], contacts: UnitContacts | None, who: Principal
) -> None:
    """A unit is told on channels the caller can see (its own area's)."""
    wanted = contacts.channels if contacts else []
    missing = sorted(set(wanted) - await visible_ids(conn, wanted, scope=who.area_prefix))
    if missing:
        raise Invalid(f"no channel {', '.join(missing)} in your area", field="contacts.channels")


@router.post("", status_code=201, responses=refusals(Conflict))
async def create_unit(body: UnitIn, who: UnitWriter, conn: Conn) -> Unit:
    """`contacts`: the channels a dispatch is sent on, and whom they call out. A department
    (`kind: department`) may name its parent organisation (`parent_id`, a unit), which is told
    when it is late to report in."""
    who.require_area(body.area)
    await _check_contacts(conn, body.contacts, who)
    await units.check_parent(conn, body.parent_id, scope=who.area_prefix)
    return await units.create_unit(conn, body)


@router.get("")
async def list_units(
    who: Reader,
    conn: Conn,
    area: AreaFilter = None,
    category: str | None = None,
    on_duty: bool | None = None,
    kind: UnitKind | None = None,
    above: bool = False,
    limit: Limit = 100,
    cursor: str | None = None,
) -> Page[Unit]:
    """`above=true`: also the units over your area (the district's departments a street or
    community summons: `kind=department&above=true`)."""
    return await units.list_units(
        conn,
        scope=who.area_prefix,
        area=area,
        category=category,
        on_duty=on_duty,
        kind=kind,
        above=above,
        limit=limit,
        cursor=cursor,
    )


@router.get("/{unit_id}")
async def get_unit(unit_id: str, who: Reader, conn: Conn) -> Unit:
    return await units.get_unit(conn, unit_id, scope=who.area_prefix)


@router.patch("/{unit_id}")
async def update_unit(unit_id: str, body: UnitUpdate, who: UnitWriter, conn: Conn) -> Unit:
    """Change a unit's details or put it on or off duty."""
    if body.area is not None:
        who.require_area(body.area)
    await _check_contacts(conn, body.contacts, who)
    await units.check_parent(conn, body.parent_id, scope=who.area_prefix)
    return await units.update_unit(conn, unit_id, body, scope=who.area_prefix)


@router.delete("/{unit_id}", status_code=204)
async def delete_unit(unit_id: str, who: UnitWriter, conn: Conn) -> Response:
    await units.delete_unit(conn, unit_id, scope=who.area_prefix)
    return Response(status_code=204)
