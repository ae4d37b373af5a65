"""The 报到 timer: a summoned unit past its report-in time turns overdue, once, and the
summoning level and the unit's parent organisation hear of it (督办); a closed 攻坚哨 or 应急哨
with a summoned unit still unrated reminds its summoning level (一案一评) until it is rated.
Each step writes its marks, audit rows and events in the caller's transaction: a hub killed
mid-sweep either did all of it or none, and the next sweep takes up what is left."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from psycopg import AsyncConnection
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from devices.units import get_unit
from hub.errors import NotFound
from incidents.events import record_change
from incidents.sla import Sla
from incidents.store import incidents_by_id

RATED_WHISTLES = ("emergency", "major")  # 重点哨: rated case by case (一案一评)


@dataclass(frozen=True)
class Overdue:
    incident_id: int
    unit_id: str
    parent_id: str | None


async def _parent_of(conn: AsyncConnection[DictRow], unit_id: str) -> str | None:
    try:
        return (await get_unit(conn, unit_id, scope="")).parent_id
    except NotFound:
        return None


async def raise_overdue(
    conn: AsyncConnection[DictRow], now: datetime, *, area_prefix: str = ""
) -> list[Overdue]:
    """Mark each unit past its report-in time overdue and raise `incident.summon_overdue`.
    SKIP LOCKED lets several timers sweep without raising anything twice."""
    cur = await conn.execute(
        """
        SELECT s.incident_id, s.unit_id, s.report_by, s.summoned_level
        FROM incident_summons s JOIN incidents i ON i.id = s.incident_id
        WHERE s.reported_at IS NULL AND s.overdue_at IS NULL AND s.report_by < %s
          AND i.status <> 'closed' AND i.area LIKE %s
        ORDER BY s.report_by, s.incident_id, s.unit_id
        FOR UPDATE OF s SKIP LOCKED
        """,
        (now, area_prefix + "%"),
    )
    rows = await cur.fetchall()
    incidents = await incidents_by_id(conn, sorted({r["incident_id"] for r in rows}))
    done = []
    for row in rows:
        incident = incidents[row["incident_id"]]
        parent = await _parent_of(conn, row["unit_id"])
        await conn.execute(
            "UPDATE incident_summons SET overdue_at = %s WHERE incident_id = %s AND unit_id = %s",
            (now, row["incident_id"], row["unit_id"]),
        )
        data = {
            "unit_id": row["unit_id"],
            "report_by": row["report_by"].isoformat(),
            "summoned_level": row["summoned_level"],
            "parent_id": parent,
        }
        await conn.execute(
            "INSERT INTO incident_audit (incident_id, at, actor, action, from_status, to_status,"
            " data) VALUES (%s, %s, 'shaobing', 'summon_overdue', %s, %s, %s)",
            (incident.id, now, incident.status.value, incident.status.value, Jsonb(data)),
        )
        await record_change(
            conn, "incident.summon_overdue", incident, at=now, action="summon_overdue", data=data
        )
        done.append(Overdue(incident.id, row["unit_id"], parent))
    return done


async def remind_ratings(
    conn: AsyncConnection[DictRow], now: datetime, sla: Sla, *, area_prefix: str = ""
) -> list[int]:
    """Closed 重点哨 with a summoned unit still unrated: `incident.rating_due`, every
    `sla.rating_remind` after the close until each is rated; the incidents reminded of."""
    cur = await conn.execute(
        """
        SELECT s.incident_id, s.unit_id
        FROM incident_summons s JOIN incidents i ON i.id = s.incident_id
        WHERE s.rating IS NULL AND i.status = 'closed' AND i.priority = ANY(%(rated)s)
          AND i.area LIKE %(prefix)s
          AND coalesce(s.rating_reminded_at, i.closed_at) <= %(due)s
        ORDER BY s.incident_id, s.unit_id
        FOR UPDATE OF s SKIP LOCKED
        """,
        {
            "rated": list(RATED_WHISTLES),
            "prefix": area_prefix + "%",
            "due": now - sla.rating_remind,
        },
    )
    owed: dict[int, list[str]] = {}
    for row in await cur.fetchall():
        owed.setdefault(row["incident_id"], []).append(row["unit_id"])
    incidents = await incidents_by_id(conn, list(owed))
    for incident_id, unit_ids in owed.items():
        await conn.execute(
            "UPDATE incident_summons SET rating_reminded_at = %s"
            " WHERE incident_id = %s AND unit_id = ANY(%s)",
            (now, incident_id, unit_ids),
        )
        await record_change(
            conn,
            "incident.rating_due",
            incidents[incident_id],
            at=now,
            action="rating_due",
            data={"unit_ids": unit_ids},
        )
    return list(owed)
