"""吹哨报到's assessment (考核) over a range, within the caller's area.

Per unit (`group_by=unit`), over the units summoned in [start, end): `summoned`; `reported`
(reported in at all) and `reported_on_time` (by `report_by`); `resolved` (its incident closed
as resolved); `mean_rating` (the summoning levels' ratings of it) and `rated`; `flags` (日常哨's
negative list, each flag's count).
Per area (added to `group_by=area`), over the incidents created in [start, end) that had a
whistle: `whistles` by level (priority), `mean_whistle_rating` (the mean of the summoned units'
ratings of those whistles) and `satisfaction` (residents' mean rating of those incidents).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypedDict

from psycopg import AsyncConnection
from psycopg.rows import DictRow
from pydantic import BaseModel

from devices.units import unit_names
from hub.contracts import Priority


class Filters(TypedDict):
    scope: str
    start: datetime
    end: datetime
    area: str | None
    category: str | None
    priority: Priority | None


class UnitStats(BaseModel):
    key: str  # the unit's id
    name: str | None
    summoned: int
    reported: int
    reported_on_time: int
    on_time_rate: float | None
    resolved: int
    mean_rating: float | None
    rated: int
    flags: dict[str, int]


class AreaWhistles(BaseModel):
    whistles: dict[str, int]
    mean_whistle_rating: float | None
    satisfaction: float | None


_FILTER = """
    i.area LIKE %(scope)s AND i.area LIKE %(area)s
    AND (%(category)s::text IS NULL OR i.category = %(category)s)
    AND (%(priority)s::text IS NULL OR i.priority = %(priority)s)
"""


def _params(
    scope: str,
    start: datetime,
    end: datetime,
    area: str | None,
    category: str | None,
    priority: Priority | None,
) -> dict[str, Any]:
    return {
        "scope": scope + "%",
        "area": (area or "") + "%",
        "start": start,
        "end": end,
        "category": category,
        "priority": priority.value if priority else None,
    }


async def unit_stats(
    conn: AsyncConnection[DictRow],
    *,
    scope: str,
    start: datetime,
    end: datetime,
    area: str | None = None,
    category: str | None = None,
    priority: Priority | None = None,
) -> list[UnitStats]:
    params = _params(scope, start, end, area, category, priority)
    chosen = f"""
        FROM incident_summons s JOIN incidents i ON i.id = s.incident_id
        WHERE {_FILTER} AND s.summoned_at >= %(start)s AND s.summoned_at < %(end)s
    """
    cur = await conn.execute(
        f"""
        SELECT s.unit_id AS key, count(*) AS summoned,
            count(s.reported_at) AS reported,
            count(*) FILTER (WHERE s.reported_at <= s.report_by) AS reported_on_time,
            (count(*) FILTER (WHERE s.reported_at <= s.report_by))::float8 / count(*)
              AS on_time_rate,
            count(*) FILTER (WHERE i.close_reason = 'resolved') AS resolved,
            avg(s.rating)::float8 AS mean_rating, count(s.rating) AS rated
        {chosen}
        GROUP BY s.unit_id ORDER BY s.unit_id
        """,
        params,
    )
    rows = await cur.fetchall()
    flagged = chosen.replace("WHERE", ", unnest(s.flags) f WHERE", 1)
    cur = await conn.execute(f"SELECT s.unit_id, f, count(*) AS n {flagged} GROUP BY 1, 2", params)
    flags: dict[str, dict[str, int]] = {}
    for row in await cur.fetchall():
        flags.setdefault(row["unit_id"], {})[row["f"]] = row["n"]
    names = await unit_names(conn, [row["key"] for row in rows])
    return [
        UnitStats.model_validate(
            {**row, "name": names.get(row["key"]), "flags": flags.get(row["key"], {})}
        )
        for row in rows
    ]


async def area_whistles(
    conn: AsyncConnection[DictRow],
    *,
    scope: str,
    start: datetime,
    end: datetime,
    area: str | None = None,
    category: str | None = None,
    priority: Priority | None = None,
    digits: int = 12,
) -> dict[str, AreaWhistles]:
    """Per area (the first `digits` of the incident's: 9 for its street), over the incidents
    created in range that had a whistle."""
    cur = await conn.execute(
        f"""
        WITH blown AS (
            SELECT i.id, left(i.area, {int(digits)}) AS area, i.priority, i.rating
            FROM incidents i
            WHERE {_FILTER} AND i.created_at >= %(start)s AND i.created_at < %(end)s
              AND EXISTS (SELECT 1 FROM incident_summons s WHERE s.incident_id = i.id)
        )
        SELECT area,
            jsonb_object_agg(priority, n) AS whistles,
            (SELECT avg(s.whistle_rating)::float8 FROM incident_summons s
             JOIN blown w ON w.id = s.incident_id WHERE w.area = b.area) AS mean_whistle_rating,
            (SELECT avg(w.rating)::float8 FROM blown w WHERE w.area = b.area) AS satisfaction
        FROM (SELECT area, priority, count(*) AS n FROM blown GROUP BY 1, 2) b
        GROUP BY area
        """,
        _params(scope, start, end, area, category, priority),
    )
    return {row["area"]: AreaWhistles.model_validate(row) for row in await cur.fetchall()}
