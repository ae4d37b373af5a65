"""SLA escalation: an overdue incident goes up the area hierarchy (12 → 9 → 6 → 4 digits).

Not accepted by `accept_by`, or not resolved by `resolve_by`: the incident is escalated one
level up, the live stream says so (`incident.escalated`, with the area it went to), and each
missed deadline moves on by its SLA period, so a level that also lets it lapse hands it
further up. One escalation per incident per tick at most: an incident past both deadlines
escalates once, for both. A city-level incident has nowhere further to go.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from psycopg import AsyncConnection
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from hub.area_codes import parent_code
from hub.contracts import Priority
from incidents.events import record_change
from incidents.models import Incident
from incidents.sla import Sla
from incidents.states import Status
from incidents.store import COLUMNS

_UNRESOLVED = (Status.REPORTED, Status.ACCEPTED, Status.DISPATCHED, Status.HANDLING)


@dataclass(frozen=True)
class Escalation:
    incident_id: int
    to_area: str
    reason: str  # accept_overdue | resolve_overdue | accept_overdue+resolve_overdue


async def escalate_overdue(
    conn: AsyncConnection[DictRow], now: datetime, sla: Sla, *, area_prefix: str = ""
) -> list[Escalation]:
    """Escalate every overdue incident in the area once; run inside a transaction, on a timer.

    SKIP LOCKED lets several processes run the timer without escalating anything twice.
    """
    cur = await conn.execute(
        """
        SELECT id, area, priority, status, accept_by, resolve_by, escalated_to
        FROM incidents
        WHERE area LIKE %(prefix)s
          AND ((status = 'reported' AND accept_by < %(now)s)
               OR (status = ANY(%(unresolved)s) AND resolve_by < %(now)s))
        ORDER BY id
        FOR UPDATE SKIP LOCKED
        """,
        {"now": now, "unresolved": [s.value for s in _UNRESOLVED], "prefix": area_prefix + "%"},
    )
    done: list[Escalation] = []
    for row in await cur.fetchall():
        deadlines = sla[Priority(row["priority"])]
        changes: dict[str, object] = {}
        reasons = []
        if row["status"] == Status.REPORTED and row["accept_by"] < now:
            changes["accept_by"] = now + deadlines.accept
            reasons.append("accept_overdue")
        if row["resolve_by"] < now:
            changes["resolve_by"] = now + deadlines.resolve
            reasons.append("resolve_overdue")
        reason = "+".join(reasons)
        target = parent_code(row["escalated_to"] or row["area"])
        if target is None:
            # Already at the top: push the deadlines on without another escalation.
            await _update(conn, row["id"], changes, now)
            continue
        incident = await _update(
            conn, row["id"], {**changes, "escalated_to": target}, now, escalate=True
        )
        await conn.execute(
            "INSERT INTO incident_audit (incident_id, at, actor, action, from_status, to_status,"
            " data) VALUES (%s, %s, 'shaobing', 'escalate', %s, %s, %s)",
            (row["id"], now, row["status"], row["status"], Jsonb({"to": target, "reason": reason})),
        )
        await record_change(
            conn,
            "incident.escalated",
            incident,
            at=now,
            action="escalate",
            data={"escalated_to": target, "reason": reason},
        )
        done.append(Escalation(row["id"], target, reason))
    return done


async def _update(
    conn: AsyncConnection[DictRow],
    incident_id: int,
    changes: dict[str, object],
    now: datetime,
    *,
    escalate: bool = False,
) -> Incident:
    assignments = ", ".join(f"{name} = %({name})s" for name in changes)
    bump = ", escalations = escalations + 1" if escalate else ""
    cur = await conn.execute(
        f"UPDATE incidents SET {assignments}{bump}, updated_at = greatest(updated_at, %(now)s)"
        f" WHERE id = %(id)s RETURNING {COLUMNS}",
        {**changes, "now": now, "id": incident_id},
    )
    return Incident.model_validate(await cur.fetchone())
