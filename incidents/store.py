"""Incidents in PostgreSQL: the queries, the audit trail and the live-stream announcements
that opening and actions share."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from hub import signal_log
from hub.contracts import Priority
from hub.db import fetch_model
from hub.paging import Page, decode_int_cursor, page_of
from incidents.models import AuditEntry, Incident
from incidents.states import Status
from incidents.summons import summons_by_incident

COLUMNS = (
    "id, rule_id, rule_version, category, priority, status, area, site, building, title,"
    " created_at, updated_at, accept_by, resolve_by, accepted_at, closed_at, close_reason,"
    " unit_id, suggested_unit_id, lat, lon, signal_count, first_signal_at, last_signal_at,"
    " evidence, escalated_to, escalations, rating, recovered_at, source, reported_by, floor"
)


async def with_summons(conn: AsyncConnection[DictRow], incidents: list[Incident]) -> list[Incident]:
    """The incidents with their 报到 records (as of now)."""
    found = await summons_by_incident(conn, [i.id for i in incidents], datetime.now(UTC))
    for incident in incidents:
        incident.summons = found.get(incident.id, [])
    return incidents


async def get_incident(
    conn: AsyncConnection[DictRow], incident_id: int, *, scope: str, for_update: bool = False
) -> Incident:
    """The incident, if it lies in `scope`; locked for the transaction with `for_update`."""
    lock = " FOR UPDATE" if for_update else ""
    incident = await fetch_model(
        conn,
        Incident,
        f"SELECT {COLUMNS} FROM incidents WHERE id = %s AND area LIKE %s{lock}",
        (incident_id, scope + "%"),
        missing=f"incident {incident_id} not found",
    )
    [found] = await with_summons(conn, [incident])
    return found


async def incidents_by_id(conn: AsyncConnection[DictRow], ids: list[int]) -> dict[int, Incident]:
    """These incidents as they are now, whatever their area (for the hub's own workers)."""
    cur = await conn.execute(f"SELECT {COLUMNS} FROM incidents WHERE id = ANY(%s)", (ids,))
    found = await with_summons(conn, [Incident.model_validate(r) for r in await cur.fetchall()])
    return {incident.id: incident for incident in found}


async def list_incidents(
    conn: AsyncConnection[DictRow],
    *,
    scope: str,
    status: list[Status] | None = None,
    area: str | None = None,
    category: str | None = None,
    priority: Priority | None = None,
    since: datetime | None = None,
    source: str | None = None,
    mine: tuple[str, str | None] | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Page[Incident]:
    """Newest first; `next` continues below the last id. `mine`: (reporter, unit) for field
    staff, who see what they reported and what was dispatched or summoned to their unit."""
    before = decode_int_cursor(cursor)
    cur = await conn.execute(
        f"""
        SELECT {COLUMNS} FROM incidents
        WHERE area LIKE %(scope)s AND area LIKE %(area)s
          AND (%(before)s::bigint IS NULL OR id < %(before)s)
          AND (%(status)s::text[] IS NULL OR status = ANY(%(status)s))
          AND (%(category)s::text IS NULL OR category = %(category)s)
          AND (%(priority)s::text IS NULL OR priority = %(priority)s)
          AND (%(since)s::timestamptz IS NULL OR created_at >= %(since)s)
          AND (%(source)s::text IS NULL OR source = %(source)s)
          AND (%(me)s::text IS NULL OR reported_by = %(me)s OR unit_id = %(unit)s
               OR EXISTS (SELECT 1 FROM incident_summons s
                          WHERE s.incident_id = incidents.id AND s.unit_id = %(unit)s))
        ORDER BY id DESC LIMIT %(limit)s
        """,
        {
            "scope": scope + "%",
            "area": (area or "") + "%",
            "before": before,
            "status": [s.value for s in status] if status else None,
            "category": category,
            "priority": priority.value if priority else None,
            "since": since,
            "source": source,
            "me": mine[0] if mine else None,
            "unit": mine[1] if mine else None,
            "limit": limit + 1,
        },
    )
    page = page_of(Incident, await cur.fetchall(), limit)
    await with_summons(conn, page.items)
    return page


async def audit_trail(
    conn: AsyncConnection[DictRow], incident_id: int, *, scope: str
) -> list[AuditEntry]:
    await get_incident(conn, incident_id, scope=scope)
    cur = await conn.execute(
        "SELECT at, actor, action, from_status, to_status, note, data FROM incident_audit"
        " WHERE incident_id = %s ORDER BY id",
        (incident_id,),
    )
    return [AuditEntry.model_validate(row) for row in await cur.fetchall()]


async def signal_ids(conn: AsyncConnection[DictRow], incident_id: int, *, scope: str) -> list[int]:
    """The ids of the signals the incident holds, oldest first."""
    await get_incident(conn, incident_id, scope=scope)
    cur = await conn.execute(
        "SELECT signal_id FROM incident_signals WHERE incident_id = %s ORDER BY signal_id",
        (incident_id,),
    )
    return [row["signal_id"] for row in await cur.fetchall()]


async def record_audit(
    conn: AsyncConnection[DictRow],
    incident_id: int,
    actor: str,
    action: str,
    from_status: Status | None,
    to_status: Status,
    at: datetime,
    *,
    note: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO incident_audit (incident_id, at, actor, action, from_status, to_status,"
        " note, data) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (
            incident_id,
            at,
            actor,
            action,
            from_status.value if from_status else None,
            to_status.value,
            note,
            Jsonb(data or {}),
        ),
    )


async def open_keys(
    conn: AsyncConnection[DictRow], *, area_prefix: str = ""
) -> set[tuple[str, str]]:
    """(rule_id, group_key) of every open incident in the area."""
    cur = await conn.execute(
        "SELECT rule_id, group_key FROM incidents WHERE status <> 'closed'"
        " AND rule_id IS NOT NULL AND area LIKE %s",
        (area_prefix + "%",),
    )
    return {(row["rule_id"], row["group_key"]) for row in await cur.fetchall()}


async def closed_since(
    conn: AsyncConnection[DictRow], since: datetime, *, area_prefix: str = ""
) -> list[dict[str, Any]]:
    """Rule incidents in the area closed at or after `since`: id, rule_id, group_key,
    closed_at, oldest first."""
    cur = await conn.execute(
        "SELECT id, rule_id, group_key, closed_at FROM incidents"
        " WHERE closed_at >= %s AND rule_id IS NOT NULL AND area LIKE %s ORDER BY closed_at, id",
        (since, area_prefix + "%"),
    )
    return list(await cur.fetchall())


async def signal_sources(
    conn: AsyncConnection[DictRow], incident_id: int, *, source_type: str
) -> list[str]:
    """The ids of the sources of `source_type` whose signals the incident holds."""
    cur = await conn.execute(
        "SELECT signal_id FROM incident_signals WHERE incident_id = %s", (incident_id,)
    )
    held = [row["signal_id"] for row in await cur.fetchall()]
    return await signal_log.source_ids(conn, held, source_type=source_type) if held else []
