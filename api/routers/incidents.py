"""/api/v1/incidents: the command centre's loop, report → accept → dispatch → ... → close."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from api.auth import ALL_ROLES, Principal, allow
from api.deps import AreaFilter, Category, Cursor, DbPool, Limit, Reader
from api.tokens import Role
from devices.paging import Page
from hub.contracts import Priority
from hub.errors import Forbidden
from incidents import store
from incidents.actions import apply_action
from incidents.models import ActionIn, AuditEntry, Incident
from incidents.states import OPEN_STATUSES, Action, Status

router = APIRouter(prefix="/incidents", tags=["incidents"])
# Dispatchers run the loop; operators may comment (say, on a rule's false alarm); a
# dispatched unit's link acts on its own incident.
Actor = Annotated[
    Principal,
    Depends(allow(frozenset({Role.ADMIN, Role.DISPATCHER, Role.OPERATOR, Role.UNIT_LINK}))),
]
OneReader = Annotated[Principal, Depends(allow(ALL_ROLES | {Role.UNIT_LINK}))]
UNIT_ACTIONS = frozenset({Action.ACKNOWLEDGE, Action.START, Action.RESOLVE, Action.COMMENT})


def _own_incident(who: Principal, incident_id: int) -> None:
    """A unit's link reaches its own incident and no other."""
    if who.role is Role.UNIT_LINK and who.incident_id != incident_id:
        raise Forbidden("this link is for another incident")


@router.get("")
async def list_incidents(
    who: Reader,
    pool: DbPool,
    status: Annotated[
        list[Status] | None,
        Query(description="repeat for several: ?status=reported&status=accepted"),
    ] = None,
    open: Annotated[bool | None, Query(description="true: every state but closed")] = None,
    area: AreaFilter = None,
    category: Category = None,
    priority: Priority | None = None,
    since: datetime | None = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Page[Incident]:
    """Newest first, within the caller's area; `next` is the cursor of the following page."""
    wanted = status
    if open is not None:
        chosen = OPEN_STATUSES if open else [Status.CLOSED]
        wanted = [s for s in chosen if not status or s in status]
    async with pool.connection() as conn:
        return await store.list_incidents(
            conn, scope=who.area_prefix, status=wanted, area=area, category=category,
            priority=priority, since=since, limit=limit, cursor=cursor,
        )  # fmt: skip


@router.get("/{incident_id}")
async def get_incident(incident_id: int, who: OneReader, pool: DbPool) -> Incident:
    _own_incident(who, incident_id)
    async with pool.connection() as conn:
        return await store.get_incident(conn, incident_id, scope=who.area_prefix)


@router.get("/{incident_id}/audit")
async def audit(incident_id: int, who: Reader, pool: DbPool) -> list[AuditEntry]:
    async with pool.connection() as conn:
        return await store.audit_trail(conn, incident_id, scope=who.area_prefix)


@router.post("/{incident_id}/actions")
async def act(incident_id: int, body: ActionIn, who: Actor, pool: DbPool) -> Incident:
    """Apply an action; 409 when the incident's state does not allow it. A unit's link may
    acknowledge, start (on site), resolve and comment."""
    if who.role is Role.OPERATOR and body.action is not Action.COMMENT:
        raise Forbidden("operators may only comment on incidents")
    _own_incident(who, incident_id)
    if who.role is Role.UNIT_LINK and body.action not in UNIT_ACTIONS:
        raise Forbidden(f"a unit's link may not {body.action.value}")
    async with pool.connection() as conn:
        return await apply_action(
            conn, incident_id, body, actor=who.name, scope=who.area_prefix, now=datetime.now(UTC)
        )
