"""/api/v1/incidents: the command centre's loop, report → accept → dispatch → ... → close."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends

from api.auth import Principal, allow
from api.deps import AreaFilter, DbPool, Limit, Reader
from api.tokens import Role
from devices.paging import Page
from hub.errors import Forbidden
from incidents import store
from incidents.models import ActionIn, AuditEntry, Incident
from incidents.states import Action, Status
from rules.model import Priority

router = APIRouter(prefix="/incidents", tags=["incidents"])
# Dispatchers run the loop; operators may comment (say, on a rule's false alarm).
Actor = Annotated[
    Principal, Depends(allow(frozenset({Role.ADMIN, Role.DISPATCHER, Role.OPERATOR})))
]


@router.get("")
async def list_incidents(
    who: Reader,
    pool: DbPool,
    status: Status | None = None,
    area: AreaFilter = None,
    category: str | None = None,
    priority: Priority | None = None,
    since: datetime | None = None,
    limit: Limit = 100,
    cursor: str | None = None,
) -> Page[Incident]:
    async with pool.connection() as conn:
        return await store.list_incidents(
            conn, scope=who.area_prefix, status=status, area=area, category=category,
            priority=priority, since=since, limit=limit, cursor=cursor,
        )  # fmt: skip


@router.get("/{incident_id}")
async def get_incident(incident_id: int, who: Reader, pool: DbPool) -> Incident:
    async with pool.connection() as conn:
        return await store.get_incident(conn, incident_id, scope=who.area_prefix)


@router.get("/{incident_id}/audit")
async def audit(incident_id: int, who: Reader, pool: DbPool) -> list[AuditEntry]:
    async with pool.connection() as conn:
        return await store.audit_trail(conn, incident_id, scope=who.area_prefix)


@router.post("/{incident_id}/actions")
async def act(incident_id: int, body: ActionIn, who: Actor, pool: DbPool) -> Incident:
    """Apply an action; 409 when the incident's state does not allow it."""
    if who.role is Role.OPERATOR and body.action is not Action.COMMENT:
        raise Forbidden("operators may only comment on incidents")
    async with pool.connection() as conn:
        return await store.apply_action(
            conn, incident_id, body, actor=who.name, scope=who.area_prefix, now=datetime.now(UTC)
        )
