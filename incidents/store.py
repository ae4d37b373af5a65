"""Incidents in PostgreSQL: open or attach, actions with their audit rows, queries."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from devices.paging import Page, decode_cursor, encode_cursor
from devices.units import get_unit, nearest_unit
from hub.db import fetch_model
from hub.errors import Conflict, Invalid, NotFound
from hub.events import announce
from incidents.models import ActionIn, AuditEntry, Incident, NewIncident
from incidents.states import SLA, Action, CloseReason, Status, allowed_actions, next_status
from rules.model import Priority

MAX_EVIDENCE = 20
_RANK = {Priority.ROUTINE: 0, Priority.MAJOR: 1, Priority.EMERGENCY: 2}
_COLUMNS = (
    "id, rule_id, rule_version, category, priority, status, area, site, building, title,"
    " created_at, updated_at, accept_by, resolve_by, accepted_at, closed_at, close_reason,"
    " unit_id, suggested_unit_id, lat, lon, signal_count, first_signal_at, last_signal_at,"
    " evidence, escalated_to, escalations, rating"
)


async def open_or_attach(
    conn: AsyncConnection[DictRow], new: NewIncident, *, now: datetime
) -> tuple[Incident, bool]:
    """Open an incident, or attach to the open one of the same rule and group.

    Returns the incident and whether it was created. A higher priority (a confirmation)
    raises an attached incident's priority and deadlines.
    """
    accept, resolve = SLA[new.priority]
    cur = await conn.execute(
        f"""
        INSERT INTO incidents AS i (rule_id, rule_version, group_key, category, priority, status,
            area, site, building, title, created_at, updated_at, accept_by, resolve_by,
            first_signal_at, last_signal_at, evidence, lat, lon, suggested_unit_id)
        VALUES (%(rule_id)s, %(rule_version)s, %(group_key)s, %(category)s, %(priority)s,
            'reported', %(area)s, %(site)s, %(building)s, %(title)s, %(now)s, %(now)s,
            %(accept_by)s, %(resolve_by)s, %(signal_at)s, %(signal_at)s, %(evidence)s,
            %(lat)s, %(lon)s, %(suggested)s)
        ON CONFLICT (rule_id, group_key) WHERE status <> 'closed' DO UPDATE SET
            signal_count = i.signal_count + 1,
            last_signal_at = greatest(i.last_signal_at, excluded.last_signal_at),
            -- The first few signals are the evidence; later ones only count.
            evidence = CASE WHEN jsonb_array_length(i.evidence) < %(max_evidence)s
                            THEN i.evidence || excluded.evidence ELSE i.evidence END,
            updated_at = excluded.updated_at
        RETURNING {_COLUMNS}, (xmax = 0) AS created, i.priority AS old_priority
        """,
        {
            **new.model_dump(exclude={"evidence", "dispatch"}),
            "suggested": await _suggest_unit(conn, new),
            "now": now,
            "accept_by": now + accept,
            "resolve_by": now + resolve,
            "evidence": Jsonb(new.evidence[:MAX_EVIDENCE]),
            "max_evidence": MAX_EVIDENCE,
        },
    )
    row = await cur.fetchone()
    assert row is not None
    created = bool(row.pop("created"))
    row.pop("old_priority")
    incident = Incident.model_validate(row)
    if created:
        await _audit(
            conn,
            incident.id,
            "shaobing",
            "report",
            None,
            Status.REPORTED,
            now,
            data={"rule_id": new.rule_id, "rule_version": new.rule_version},
        )
        await _notify(conn, "incident.created", incident)
        return incident, True
    if _RANK[new.priority] > _RANK[incident.priority]:
        incident = await _raise_priority(conn, incident, new.priority, now)
    await _audit(
        conn,
        incident.id,
        "shaobing",
        "attach",
        incident.status,
        incident.status,
        now,
        data={"signal_count": incident.signal_count},
    )
    await _notify(conn, "incident.updated", incident)
    return incident, False


async def apply_action(
    conn: AsyncConnection[DictRow],
    incident_id: int,
    action: ActionIn,
    *,
    actor: str,
    scope: str,
    now: datetime,
) -> Incident:
    """Move an incident through the loop; 409 when its state does not allow the action."""
    current = await get_incident(conn, incident_id, scope=scope, for_update=True)
    target = next_status(current.status, action.action)
    if target is None:
        allowed = ", ".join(a.value for a in allowed_actions(current.status))
        raise Conflict(
            f"cannot {action.action.value} an incident that is {current.status.value}"
            f" (allowed: {allowed})",
            field="action",
        )
    changes: dict[str, Any] = {"status": target.value, "updated_at": now}
    match action.action:
        case Action.ACCEPT:
            changes["accepted_at"] = now
        case Action.DISPATCH:
            unit_id = action.unit_id or current.suggested_unit_id
            if unit_id is None:
                raise Invalid("dispatch needs unit_id (no unit was proposed)", field="unit_id")
            try:
                unit = await get_unit(conn, unit_id, scope="")
            except NotFound:
                raise Invalid(f"unit {unit_id} is not registered", field="unit_id") from None
            if not unit.on_duty:
                raise Invalid(f"unit {unit.id} is off duty", field="unit_id")
            changes["unit_id"] = unit.id
        case Action.CLOSE:
            reason = action.reason or (
                CloseReason.RESOLVED if current.status is Status.VERIFIED else None
            )
            if reason is None:
                raise Invalid(
                    "close needs a reason: resolved, false_alarm, duplicate, not_responsible",
                    field="reason",
                )
            changes |= {"closed_at": now, "close_reason": reason.value}
        case Action.RATE:
            if current.rating is not None:
                raise Conflict("this incident was rated already", field="rating")
            changes["rating"] = action.rating
    assignments = ", ".join(f"{name} = %({name})s" for name in changes)
    cur = await conn.execute(
        f"UPDATE incidents SET {assignments} WHERE id = %(id)s RETURNING {_COLUMNS}",
        {**changes, "id": incident_id},
    )
    row = await cur.fetchone()
    assert row is not None
    updated = Incident.model_validate(row)
    data = {
        k: v
        for k, v in {
            "unit_id": action.unit_id,
            "reason": action.reason,
            "rating": action.rating,
        }.items()
        if v is not None
    }
    await _audit(
        conn,
        incident_id,
        actor,
        action.action.value,
        current.status,
        target,
        now,
        note=action.note,
        data=data,
    )
    if action.action is not Action.COMMENT:
        await _notify(conn, "incident.updated", updated)
    return updated


async def _suggest_unit(conn: AsyncConnection[DictRow], new: NewIncident) -> str | None:
    """For `dispatch: nearest`: the closest on-duty unit for the category in the same district."""
    if new.dispatch != "nearest" or new.lat is None or new.lon is None:
        return None
    unit = await nearest_unit(
        conn, category=new.category, lat=new.lat, lon=new.lon, area_prefix=new.area[:6]
    )
    return unit.id if unit else None


async def get_incident(
    conn: AsyncConnection[DictRow], incident_id: int, *, scope: str, for_update: bool = False
) -> Incident:
    """The incident, if it lies in `scope`; locked for the transaction with `for_update`."""
    lock = " FOR UPDATE" if for_update else ""
    return await fetch_model(
        conn,
        Incident,
        f"SELECT {_COLUMNS} FROM incidents WHERE id = %s AND area LIKE %s{lock}",
        (incident_id, scope + "%"),
        missing=f"incident {incident_id} not found",
    )


async def list_incidents(
    conn: AsyncConnection[DictRow],
    *,
    scope: str,
    status: Status | None = None,
    area: str | None = None,
    category: str | None = None,
    priority: Priority | None = None,
    since: datetime | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Page[Incident]:
    """Newest first; `next` continues below the last id."""
    before = decode_cursor(cursor)
    cur = await conn.execute(
        f"""
        SELECT {_COLUMNS} FROM incidents
        WHERE area LIKE %(scope)s AND area LIKE %(area)s
          AND (%(before)s = '' OR id < %(before)s::bigint)
          AND (%(status)s::text IS NULL OR status = %(status)s)
          AND (%(category)s::text IS NULL OR category = %(category)s)
          AND (%(priority)s::text IS NULL OR priority = %(priority)s)
          AND (%(since)s::timestamptz IS NULL OR created_at >= %(since)s)
        ORDER BY id DESC LIMIT %(limit)s
        """,
        {
            "scope": scope + "%",
            "area": (area or "") + "%",
            "before": before,
            "status": status.value if status else None,
            "category": category,
            "priority": priority.value if priority else None,
            "since": since,
            "limit": limit + 1,
        },
    )
    rows = await cur.fetchall()
    items = [Incident.model_validate(r) for r in rows[:limit]]
    more = len(rows) > limit
    return Page[Incident](items=items, next=encode_cursor(str(items[-1].id)) if more else None)


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


async def _raise_priority(
    conn: AsyncConnection[DictRow], incident: Incident, priority: Priority, now: datetime
) -> Incident:
    accept, resolve = SLA[priority]
    cur = await conn.execute(
        f"UPDATE incidents SET priority = %s, accept_by = least(accept_by, %s),"
        f" resolve_by = least(resolve_by, %s), updated_at = %s WHERE id = %s RETURNING {_COLUMNS}",
        (
            priority.value,
            incident.created_at + accept,
            incident.created_at + resolve,
            now,
            incident.id,
        ),
    )
    row = await cur.fetchone()
    assert row is not None
    await _audit(
        conn,
        incident.id,
        "shaobing",
        "raise_priority",
        incident.status,
        incident.status,
        now,
        data={"from": incident.priority, "to": priority},
    )
    return Incident.model_validate(row)


async def _audit(
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


async def _notify(conn: AsyncConnection[DictRow], kind: str, incident: Incident) -> None:
    """For the live stream: delivered on commit, to every process listening."""
    await announce(
        conn,
        kind,
        id=incident.id,
        area=incident.area,
        status=incident.status.value,
        priority=incident.priority.value,
    )


async def open_keys(conn: AsyncConnection[DictRow]) -> set[tuple[str, str]]:
    """(rule_id, group_key) of every open incident."""
    cur = await conn.execute(
        "SELECT rule_id, group_key FROM incidents WHERE status <> 'closed' AND rule_id IS NOT NULL"
    )
    return {(row["rule_id"], row["group_key"]) for row in await cur.fetchall()}


async def last_closed_at(
    conn: AsyncConnection[DictRow], rule_id: str, group_key: str
) -> datetime | None:
    """When the latest incident of this rule and group was closed (for cooldowns)."""
    cur = await conn.execute(
        "SELECT max(closed_at) AS at FROM incidents WHERE rule_id = %s AND group_key = %s",
        (rule_id, group_key),
    )
    row = await cur.fetchone()
    return row["at"] if row else None


async def is_open(conn: AsyncConnection[DictRow], rule_id: str, group_key: str) -> bool:
    cur = await conn.execute(
        "SELECT 1 FROM incidents WHERE rule_id = %s AND group_key = %s AND status <> 'closed'",
        (rule_id, group_key),
    )
    return await cur.fetchone() is not None
