"""/api/v1/routes: which incident events go to which channels (admin, operator; by area)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from api.auth import Principal
from api.deps import Conn, Cursor, Limit
from api.openapi import refusals
from api.permissions import Capability, allowed
from hub.errors import Conflict, Invalid
from hub.paging import Page
from notify import routes
from notify.models import Route, RouteIn

router = APIRouter(prefix="/routes", tags=["notifications"])
RouteWriter = Annotated[Principal, Depends(allowed(Capability.MANAGE_ROUTES))]


@router.post("", status_code=201, responses=refusals(Conflict))
async def create_route(body: RouteIn, who: RouteWriter, conn: Conn) -> Route:
    """The route belongs to your area: it matches incidents under it only, and names only
    channels within it. Without `match.area_prefix` it takes your area."""
    return await routes.create_route(conn, body, scope=who.area_prefix)


@router.get("")
async def list_routes(
    who: RouteWriter, conn: Conn, limit: Limit = 100, cursor: Cursor = None
) -> Page[Route]:
    """Routes by id; `next` is the cursor of the following page."""
    return await routes.list_routes(conn, scope=who.area_prefix, limit=limit, cursor=cursor)


@router.get("/{route_id}")
async def get_route(route_id: str, who: RouteWriter, conn: Conn) -> Route:
    return await routes.get_route(conn, route_id, scope=who.area_prefix)


@router.put("/{route_id}")
async def replace_route(route_id: str, body: RouteIn, who: RouteWriter, conn: Conn) -> Route:
    if body.id != route_id:
        raise Invalid(f"the document's id {body.id!r} is not {route_id!r}", field="body.id")
    return await routes.replace_route(conn, body, scope=who.area_prefix)


@router.delete("/{route_id}", status_code=204)
async def delete_route(route_id: str, who: RouteWriter, conn: Conn) -> Response:
    await routes.delete_route(conn, route_id, scope=who.area_prefix)
    return Response(status_code=204)
