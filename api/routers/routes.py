"""/api/v1/routes: which incident events go to which channels (admin, operator; by area)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from api.auth import Principal, allow
from api.deps import Cursor, DbPool, Limit
from api.tokens import Role
from hub.errors import Invalid
from hub.paging import Page
from notify import routes
from notify.models import Route, RouteIn

router = APIRouter(prefix="/routes", tags=["notifications"])
RouteWriter = Annotated[Principal, Depends(allow(frozenset({Role.ADMIN, Role.OPERATOR})))]


@router.post("", status_code=201)
async def create_route(body: RouteIn, who: RouteWriter, pool: DbPool) -> Route:
    """The route belongs to your area: it matches incidents under it only, and names only
    channels within it. Without `match.area_prefix` it takes your area."""
    async with pool.connection() as conn:
        return await routes.create_route(conn, body, scope=who.area_prefix)


@router.get("")
async def list_routes(
    who: RouteWriter, pool: DbPool, limit: Limit = 100, cursor: Cursor = None
) -> Page[Route]:
    """Routes by id; `next` is the cursor of the following page."""
    async with pool.connection() as conn:
        return await routes.list_routes(conn, scope=who.area_prefix, limit=limit, cursor=cursor)


@router.get("/{route_id}")
async def get_route(route_id: str, who: RouteWriter, pool: DbPool) -> Route:
    async with pool.connection() as conn:
        return await routes.get_route(conn, route_id, scope=who.area_prefix)


@router.put("/{route_id}")
async def replace_route(route_id: str, body: RouteIn, who: RouteWriter, pool: DbPool) -> Route:
    if body.id != route_id:
        raise Invalid(f"the document's id {body.id!r} is not {route_id!r}", field="body.id")
    async with pool.connection() as conn:
        return await routes.replace_route(conn, body, scope=who.area_prefix)


@router.delete("/{route_id}", status_code=204)
async def delete_route(route_id: str, who: RouteWriter, pool: DbPool) -> Response:
    async with pool.connection() as conn:
        await routes.delete_route(conn, route_id, scope=who.area_prefix)
    return Response(status_code=204)
