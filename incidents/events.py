"""Incident changes as durable events: written in the transaction that makes the change (the
outbox notifications are fanned out from; `OUTBOX_CHANNEL` wakes the notifiers at commit) and
announced on the live stream at commit."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb
from pydantic import BaseModel

from hub.events import announce
from incidents.models import Incident

OUTBOX_CHANNEL = "sb_incident_events"  # NOTIFY at commit: an event waits in the outbox


class IncidentEvent(BaseModel):
    id: int
    incident_id: int
    kind: str
    action: str | None
    area: str
    data: dict[str, Any]
    at: datetime


async def record_change(
    conn: AsyncConnection[DictRow],
    kind: str,
    incident: Incident,
    *,
    at: datetime,
    action: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Keep the change for the notifier and wake it, and tell the live stream, at commit."""
    await conn.execute(
        "INSERT INTO incident_events (incident_id, kind, action, area, data, at)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (incident.id, kind, action, incident.area, Jsonb(data or {}), at),
    )
    await conn.execute("SELECT pg_notify(%s, '')", (OUTBOX_CHANNEL,))
    details = {k: v for k, v in (data or {}).items() if k not in ("id", "area", "type")}
    await announce(
        conn,
        kind,
        id=incident.id,
        area=incident.area,
        status=incident.status.value,
        priority=incident.priority.value,
        action=action,
        **details,
    )


async def claim_unhandled(conn: AsyncConnection[DictRow], limit: int) -> list[IncidentEvent]:
    """The oldest events no notifier has handled, locked for the caller's transaction (other
    notifiers skip them)."""
    cur = await conn.execute(
        "SELECT id, incident_id, kind, action, area, data, at FROM incident_events"
        " WHERE handled_at IS NULL ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
        (limit,),
    )
    return [IncidentEvent.model_validate(row) for row in await cur.fetchall()]


async def mark_handled(conn: AsyncConnection[DictRow], ids: list[int], at: datetime) -> None:
    await conn.execute("UPDATE incident_events SET handled_at = %s WHERE id = ANY(%s)", (at, ids))


async def events_by_id(conn: AsyncConnection[DictRow], ids: list[int]) -> dict[int, IncidentEvent]:
    cur = await conn.execute(
        "SELECT id, incident_id, kind, action, area, data, at FROM incident_events"
        " WHERE id = ANY(%s)",
        (ids,),
    )
    return {row["id"]: IncidentEvent.model_validate(row) for row in await cur.fetchall()}
