"""Incident statistics for a range, defined so that a figure never changes after the fact.

For the incidents created in [start, end) (hub time), within the caller's area:
- `total`, `by_status`: as they stand now.
- On-time acceptance (按时受理率): an incident's acceptance is *determined* once it was
  accepted, or closed without being accepted, or its accept deadline passed; it was *on time*
  when it was accepted (or closed, say as a false alarm) by that deadline. The rate is on time
  over determined; an incident whose deadline has not come yet is left out until it has.
- Closure rate (按期办结率): likewise with the resolve deadline and closing.
- Deadlines are the ones the incident had at its own level when it opened (tightened if a
  confirmation raised its priority), not the later ones escalation gives the next level.
- Times to accept and to close (mean, p90): over the incidents accepted / closed, from
  creation. Mean rating over the rated ones.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from psycopg import AsyncConnection
from psycopg.rows import DictRow
from pydantic import BaseModel

from hub.contracts import Priority
from incidents.summon_stats import Filters, UnitStats, area_whistles, unit_stats

GroupBy = Literal["none", "area", "category", "priority", "source", "unit"]
# group_by=area rolls incidents up to the level asked for, by the digits of its area code.
AreaLevel = Literal["community", "street", "district", "city"]
LEVEL_DIGITS: dict[AreaLevel, int] = {"community": 12, "street": 9, "district": 6, "city": 4}


class GroupStats(BaseModel):
    key: str
    total: int
    by_status: dict[str, int]
    accept_determined: int
    accepted_on_time: int
    on_time_accept_rate: float | None
    close_determined: int
    closed_on_time: int
    closure_rate: float | None
    accept_mean_s: float | None
    accept_p90_s: float | None
    close_mean_s: float | None
    close_p90_s: float | None
    mean_rating: float | None
    # group_by=area: 吹哨报到 (incidents.summon_stats); absent in other groupings.
    whistles: dict[str, int] | None = None
    mean_whistle_rating: float | None = None
    satisfaction: float | None = None


class Stats(BaseModel):
    start: datetime
    end: datetime
    group_by: GroupBy
    groups: list[GroupStats] | list[UnitStats]


async def incident_stats(
    conn: AsyncConnection[DictRow],
    *,
    scope: str,
    start: datetime,
    end: datetime,
    now: datetime,
    group_by: GroupBy = "none",
    area: str | None = None,
    category: str | None = None,
    priority: Priority | None = None,
    level: AreaLevel = "community",
) -> Stats:
    """Incidents created in [start, end), within the caller's area, as of `now`; with
    `group_by=unit`, the units summoned in the range (incidents.summon_stats); with
    `group_by=area`, per area of `level` (a street's communities rolled up into it)."""
    filters: Filters = {
        "scope": scope,
        "start": start,
        "end": end,
        "area": area,
        "category": category,
        "priority": priority,
    }
    if group_by == "unit":
        units = await unit_stats(conn, **filters)
        return Stats(start=start, end=end, group_by=group_by, groups=units)
    digits = LEVEL_DIGITS[level]
    groups = await _incident_groups(conn, now=now, group_by=group_by, digits=digits, **filters)
    if group_by == "area":
        blown = await area_whistles(conn, digits=digits, **filters)
        for group in groups:
            extra = blown.get(group.key)
            group.whistles = extra.whistles if extra else {}
            group.mean_whistle_rating = extra.mean_whistle_rating if extra else None
            group.satisfaction = extra.satisfaction if extra else None
    return Stats(start=start, end=end, group_by=group_by, groups=groups)


async def _incident_groups(
    conn: AsyncConnection[DictRow],
    *,
    scope: str,
    start: datetime,
    end: datetime,
    now: datetime,
    group_by: GroupBy,
    area: str | None,
    category: str | None,
    priority: Priority | None,
    digits: int = 12,
) -> list[GroupStats]:
    columns = {
        "none": "'all'",
        "area": f"left(area, {int(digits)})",
        "category": "category",
        "priority": "priority",
        "source": "source",
    }
    key = columns[group_by]
    cur = await conn.execute(
        f"""
        WITH chosen AS (
            SELECT {key} AS key, status, rating,
                   extract(epoch FROM accepted_at - created_at) AS accept_s,
                   extract(epoch FROM closed_at - created_at) AS close_s,
                   -- handled in time: accepted, or closed without acceptance, by the deadline
                   coalesce(accepted_at, closed_at) <= accept_deadline AS accept_on_time,
                   accepted_at IS NOT NULL OR closed_at IS NOT NULL
                     OR accept_deadline <= %(now)s AS accept_known,
                   closed_at <= resolve_deadline AS close_on_time,
                   closed_at IS NOT NULL OR resolve_deadline <= %(now)s AS close_known
            FROM incidents
            WHERE area LIKE %(scope)s AND area LIKE %(area)s
              AND created_at >= %(start)s AND created_at < %(end)s
              AND (%(category)s::text IS NULL OR category = %(category)s)
              AND (%(priority)s::text IS NULL OR priority = %(priority)s)
        ), states AS (
            SELECT key, jsonb_object_agg(status, n) AS by_status
            FROM (SELECT key, status, count(*) AS n FROM chosen GROUP BY 1, 2) s GROUP BY key
        )
        SELECT c.key, count(*) AS total, s.by_status,
            count(*) FILTER (WHERE accept_known) AS accept_determined,
            count(*) FILTER (WHERE accept_known AND accept_on_time) AS accepted_on_time,
            (count(*) FILTER (WHERE accept_known AND accept_on_time))::float8
              / nullif(count(*) FILTER (WHERE accept_known), 0) AS on_time_accept_rate,
            count(*) FILTER (WHERE close_known) AS close_determined,
            count(*) FILTER (WHERE close_known AND close_on_time) AS closed_on_time,
            (count(*) FILTER (WHERE close_known AND close_on_time))::float8
              / nullif(count(*) FILTER (WHERE close_known), 0) AS closure_rate,
            avg(accept_s)::float8 AS accept_mean_s,
            percentile_cont(0.9) WITHIN GROUP (ORDER BY accept_s) AS accept_p90_s,
            avg(close_s)::float8 AS close_mean_s,
            percentile_cont(0.9) WITHIN GROUP (ORDER BY close_s) AS close_p90_s,
            avg(rating)::float8 AS mean_rating
        FROM chosen c JOIN states s USING (key)
        GROUP BY c.key, s.by_status ORDER BY c.key
        """,
        {
            "scope": scope + "%",
            "area": (area or "") + "%",
            "start": start,
            "end": end,
            "now": now,
            "category": category,
            "priority": priority.value if priority else None,
        },
    )
    return [GroupStats.model_validate(row) for row in await cur.fetchall()]


class RuleStats(BaseModel):
    rule_id: str
    fired: int
    attached: int
    closed: int
    false_alarms: int
    precision: float | None  # of the closed incidents, the share that were not false alarms


async def rule_stats(
    conn: AsyncConnection[DictRow], rule_id: str, *, scope: str, start: datetime, end: datetime
) -> RuleStats:
    """How a rule did: incidents it opened in [start, end), signals attached, false alarms."""
    cur = await conn.execute(
        """
        SELECT count(*) AS fired, coalesce(sum(signal_count - 1), 0) AS attached,
               count(*) FILTER (WHERE status = 'closed') AS closed,
               count(*) FILTER (WHERE close_reason = 'false_alarm') AS false_alarms
        FROM incidents
        WHERE rule_id = %s AND area LIKE %s AND created_at >= %s AND created_at < %s
        """,
        (rule_id, scope + "%", start, end),
    )
    row = await cur.fetchone()
    assert row is not None
    closed = int(row["closed"])
    precision = (closed - int(row["false_alarms"])) / closed if closed else None
    return RuleStats(
        rule_id=rule_id,
        fired=row["fired"],
        attached=row["attached"],
        closed=closed,
        false_alarms=row["false_alarms"],
        precision=precision,
    )
