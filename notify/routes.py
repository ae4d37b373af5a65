"""Routes in PostgreSQL, and which incident events a route takes.

A route belongs to its owner's area (`scope`): it matches only incidents under it, and names
only channels within it. For `incident.escalated`, `match.area_prefix` is the level the
incident went to (a street's route hears what escalates to that street), so each level of an
escalation chain has its own routes.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection, errors
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from hub.errors import Conflict, Invalid, NotFound
from hub.paging import Page, decode_cursor, page_with
from incidents.events import IncidentEvent
from incidents.models import Incident
from notify.channels import visible_ids
from notify.models import Route, RouteIn

_COLUMNS = "id, name, scope, document, enabled, created_at, updated_at"
# Changes that a route for incident.updated takes unless it names its own: every signal an
# open incident attaches is not news to a person.
DEFAULT_ACTIONS = frozenset(
    {
        "accept",
        "dispatch",
        "start",
        "resolve",
        "verify",
        "reject",
        "close",
        "acknowledge",
        "recover",
        "summon",
        "report_in",
    }
)


def _route(row: dict[str, Any]) -> Route:
    return Route.model_validate(
        {
            **row["document"],
            "id": row["id"],
            "name": row["name"],
            "scope": row["scope"],
            "enabled": row["enabled"],
            "created_at": row["created_at"],
            "updated_at": row["updated_at"],
        }
    )


def _with_default_area(data: RouteIn, scope: str) -> RouteIn:
    if data.match.area_prefix:
        return data
    return data.model_copy(update={"match": data.match.model_copy(update={"area_prefix": scope})})


async def _check(conn: AsyncConnection[DictRow], data: RouteIn, scope: str) -> None:
    if not data.match.area_prefix.startswith(scope):
        raise Invalid(
            f"match.area_prefix {data.match.area_prefix or '(all)'} is outside your scope"
            f" ({scope or 'all areas'})",
            field="match.area_prefix",
        )
    missing = sorted(set(data.channels) - await visible_ids(conn, data.channels, scope=scope))
    if missing:
        raise Invalid(f"no channel {', '.join(missing)} in your area", field="channels")


async def create_route(conn: AsyncConnection[DictRow], data: RouteIn, *, scope: str) -> Route:
    """`scope`: the owner's area. A match without an area prefix takes the owner's."""
    data = _with_default_area(data, scope)
    await _check(conn, data, scope)
    try:
        cur = await conn.execute(
            f"INSERT INTO routes (id, name, scope, document, enabled) VALUES (%s, %s, %s, %s, %s)"
            f" RETURNING {_COLUMNS}",
            (data.id, data.name, scope, Jsonb(data.model_dump(mode="json")), data.enabled),
        )
    except errors.UniqueViolation:
        raise Conflict(f"route {data.id} already exists", field="id") from None
    row = await cur.fetchone()
    assert row is not None
    return _route(row)


async def get_route(conn: AsyncConnection[DictRow], route_id: str, *, scope: str) -> Route:
    cur = await conn.execute(
        f"SELECT {_COLUMNS} FROM routes WHERE id = %s AND scope LIKE %s", (route_id, scope + "%")
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"route {route_id} not found", field="id")
    return _route(row)


async def list_routes(
    conn: AsyncConnection[DictRow], *, scope: str, limit: int = 100, cursor: str | None = None
) -> Page[Route]:
    """The routes of the caller's area, by id, a page at a time."""
    cur = await conn.execute(
        f"SELECT {_COLUMNS} FROM routes WHERE scope LIKE %s AND id > %s ORDER BY id LIMIT %s",
        (scope + "%", decode_cursor(cursor), limit + 1),
    )
    return page_with(_route, await cur.fetchall(), limit)


async def replace_route(conn: AsyncConnection[DictRow], data: RouteIn, *, scope: str) -> Route:
    current = await get_route(conn, data.id, scope=scope)
    data = _with_default_area(data, current.scope)
    await _check(conn, data, current.scope)
    cur = await conn.execute(
        f"UPDATE routes SET name = %s, document = %s, enabled = %s, updated_at = now()"
        f" WHERE id = %s RETURNING {_COLUMNS}",
        (data.name, Jsonb(data.model_dump(mode="json")), data.enabled, data.id),
    )
    row = await cur.fetchone()
    assert row is not None
    return _route(row)


async def delete_route(conn: AsyncConnection[DictRow], route_id: str, *, scope: str) -> None:
    await get_route(conn, route_id, scope=scope)
    await conn.execute("DELETE FROM routes WHERE id = %s", (route_id,))


async def enabled_routes(conn: AsyncConnection[DictRow]) -> list[Route]:
    cur = await conn.execute(f"SELECT {_COLUMNS} FROM routes WHERE enabled ORDER BY id")
    return [_route(row) for row in await cur.fetchall()]


def takes(route: Route, event: IncidentEvent, incident: Incident) -> bool:
    """Whether the route takes this event of this incident."""
    match = route.match
    if event.kind not in match.events or not incident.area.startswith(route.scope):
        return False
    if event.kind == "incident.escalated":
        if event.data.get("escalated_to") != match.area_prefix:
            return False
    elif not incident.area.startswith(match.area_prefix):
        return False
    if event.kind == "incident.updated":
        actions = set(match.actions) if match.actions is not None else DEFAULT_ACTIONS
        if event.action not in actions:
            return False
    if match.priority is not None and incident.priority not in match.priority:
        return False
    return match.category is None or incident.category in match.category
