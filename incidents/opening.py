"""What the rules engine asks of incidents: open one, or attach signals to the open one.

Times: `now` is the hub's clock. An incident opens at hub time, and its deadlines run from
then, whatever the devices' clocks say (a device's `ts` is kept as first and last signal
time); `updated_at` never moves backwards when a late signal attaches.
"""

from __future__ import annotations

from datetime import datetime

from psycopg import AsyncConnection
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from hub.contracts import PRIORITY_RANK, Priority
from incidents.dispatch import located, proposed_unit
from incidents.events import record_change
from incidents.models import Attachment, Incident, NewIncident
from incidents.sla import Sla
from incidents.states import Status
from incidents.store import COLUMNS, record_audit

MAX_EVIDENCE = 20


async def open_or_attach(
    conn: AsyncConnection[DictRow], new: NewIncident, *, now: datetime, sla: Sla
) -> tuple[Incident, bool]:
    """Open an incident, or attach to the open one of the same rule and group (which the
    engine may not have known of). Returns the incident and whether it was created."""
    deadlines = sla[new.priority]
    new = await located(conn, new)
    cur = await conn.execute(
        f"""
        INSERT INTO incidents AS i (rule_id, rule_version, group_key, category, priority, status,
            area, site, building, floor, title, created_at, updated_at, accept_by, resolve_by,
            accept_deadline, resolve_deadline, signal_count, first_signal_at, last_signal_at,
            evidence, lat, lon, suggested_unit_id)
        VALUES (%(rule_id)s, %(rule_version)s, %(group_key)s, %(category)s, %(priority)s,
            'reported', %(area)s, %(site)s, %(building)s, %(floor)s, %(title)s, %(now)s, %(now)s,
            %(accept_by)s, %(resolve_by)s, %(accept_by)s, %(resolve_by)s, 0,
            %(first_signal_at)s, %(last_signal_at)s, '[]', %(lat)s, %(lon)s, %(suggested)s)
        ON CONFLICT (rule_id, group_key) WHERE status <> 'closed'
            DO UPDATE SET updated_at = greatest(i.updated_at, excluded.updated_at)
        RETURNING {COLUMNS}, (xmax = 0) AS created
        """,
        {
            **new.model_dump(
                exclude={"evidence", "dispatch", "signal_ids", "signal_count", "source_id"}
            ),
            "suggested": await _suggest_unit(conn, new),
            "now": now,
            "accept_by": now + deadlines.accept,
            "resolve_by": now + deadlines.resolve,
        },
    )
    row = await cur.fetchone()
    assert row is not None
    created = bool(row.pop("created"))
    incident = Incident.model_validate(row)
    if not created:
        attached = await attach(conn, _as_attachment(new), now=now, sla=sla)
        assert attached is not None  # the row is locked by the upsert
        return attached, False
    incident = await _add_signals(
        conn,
        incident,
        new.signal_ids,
        new.count,
        new.evidence,
        new.first_signal_at,
        new.last_signal_at,
        now,
    )
    await record_audit(
        conn,
        incident.id,
        "shaobing",
        "report",
        None,
        Status.REPORTED,
        now,
        data={
            "rule_id": new.rule_id,
            "rule_version": new.rule_version,
            "signals": incident.signal_count,
        },
    )
    await record_change(conn, "incident.created", incident, at=now, action="report")
    return incident, True


async def attach(
    conn: AsyncConnection[DictRow], attachment: Attachment, *, now: datetime, sla: Sla
) -> Incident | None:
    """Add signals to the open incident of (rule, group); None when there is none (it was
    closed meanwhile). A higher priority (a confirmation) raises it and tightens its
    deadlines."""
    cur = await conn.execute(
        f"SELECT {COLUMNS} FROM incidents WHERE rule_id = %s AND group_key = %s"
        " AND status <> 'closed' FOR UPDATE",
        (attachment.rule_id, attachment.group_key),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    incident = Incident.model_validate(row)
    count = len(attachment.signal_ids) or 1
    incident = await _add_signals(
        conn,
        incident,
        attachment.signal_ids,
        count,
        attachment.evidence,
        attachment.signal_at,
        attachment.signal_at,
        now,
    )
    if PRIORITY_RANK[attachment.priority] > PRIORITY_RANK[incident.priority]:
        incident = await _raise_priority(conn, incident, attachment.priority, now, sla)
    await record_audit(
        conn,
        incident.id,
        "shaobing",
        "attach",
        incident.status,
        incident.status,
        now,
        data={"signal_count": incident.signal_count},
    )
    await record_change(
        conn,
        "incident.updated",
        incident,
        at=now,
        action="attach",
        data={"signal_count": incident.signal_count},
    )
    return incident


async def _add_signals(
    conn: AsyncConnection[DictRow],
    incident: Incident,
    ids: list[int],
    count: int,
    evidence: list[object],
    first: datetime,
    last: datetime,
    now: datetime,
) -> Incident:
    """Link the signals (a signal already linked counts once) and update the counters."""
    if ids:
        cur = await conn.execute(
            "INSERT INTO incident_signals (incident_id, signal_id)"
            " SELECT %s, unnest(%s::bigint[]) ON CONFLICT DO NOTHING RETURNING signal_id",
            (incident.id, ids),
        )
        count = len(await cur.fetchall())
    cur = await conn.execute(
        f"""
        UPDATE incidents SET signal_count = signal_count + %(count)s,
            first_signal_at = least(first_signal_at, %(first)s),
            last_signal_at = greatest(last_signal_at, %(last)s),
            -- The first signals are the evidence; later ones only count.
            evidence = CASE WHEN jsonb_array_length(evidence) < %(max)s
                            THEN evidence || %(evidence)s ELSE evidence END,
            updated_at = greatest(updated_at, %(now)s)
        WHERE id = %(id)s RETURNING {COLUMNS}
        """,
        {
            "count": count,
            "first": first,
            "last": last,
            "max": MAX_EVIDENCE,
            "evidence": Jsonb(evidence[:MAX_EVIDENCE] if count else []),
            "now": now,
            "id": incident.id,
        },
    )
    row = await cur.fetchone()
    assert row is not None
    return Incident.model_validate(row)


async def _raise_priority(
    conn: AsyncConnection[DictRow], incident: Incident, priority: Priority, now: datetime, sla: Sla
) -> Incident:
    deadlines = sla[priority]
    accept, resolve = (
        incident.created_at + deadlines.accept,
        incident.created_at + deadlines.resolve,
    )
    cur = await conn.execute(
        f"UPDATE incidents SET priority = %s, accept_by = least(accept_by, %s),"
        f" resolve_by = least(resolve_by, %s), accept_deadline = least(accept_deadline, %s),"
        f" resolve_deadline = least(resolve_deadline, %s),"
        f" updated_at = greatest(updated_at, %s) WHERE id = %s RETURNING {COLUMNS}",
        (priority.value, accept, resolve, accept, resolve, now, incident.id),
    )
    row = await cur.fetchone()
    assert row is not None
    await record_audit(
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


async def _suggest_unit(conn: AsyncConnection[DictRow], new: NewIncident) -> str | None:
    if new.dispatch != "nearest":
        return None
    return await proposed_unit(conn, category=new.category, area=new.area, lat=new.lat, lon=new.lon)


def _as_attachment(new: NewIncident) -> Attachment:
    return Attachment(
        rule_id=new.rule_id,
        group_key=new.group_key,
        priority=new.priority,
        signal_at=new.last_signal_at,
        signal_ids=new.signal_ids,
        evidence=new.evidence,
    )
