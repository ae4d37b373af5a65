"""Incident statistics for a range: counts by state, closure rate (办结率), on-time acceptance,
time to accept and to close (mean and p90), mean rating."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from psycopg import AsyncConnection
from psycopg.rows import DictRow
from pydantic import BaseModel

from incidents.states import SLA
from rules.model import Priority

GroupBy = Literal["none", "area", "category", "priority"]


class GroupStats(BaseModel):
    key: str
    total: int
    by_status: dict[str, int]
    closure_rate: float | None
    on_time_accept_rate: float | None
    accept_mean_s: float | None
    accept_p90_s: float | None
    close_mean_s: float | None
    close_p90_s: float | None
    mean_rating: float | None


class Stats(BaseModel):
    start: datetime
    end: datetime
    group_by: GroupBy
    groups: list[GroupStats]


async def incident_stats(
    conn: AsyncConnection[DictRow],
    *,
    scope: str,
    start: datetime,
    end: datetime,
    group_by: GroupBy = "none",
    area: str | None = None,
    category: str | None = None,
    priority: Priority | None = None,
) -> Stats:
    """Incidents created in [start, end), within the caller's area."""
    columns = {"none": "'all'", "area": "area", "category": "category", "priority": "priority"}
    key = columns[group_by]
    # On time means within the priority's own accept time, whatever escalation did later.
    accept_limit = " ".join(
        f"WHEN '{p.value}' THEN {int(SLA[p][0].total_seconds())}" for p in Priority
    )
    cur = await conn.execute(
        f"""
        WITH chosen AS (
            SELECT {key} AS key, status, rating,
                   extract(epoch FROM accepted_at - created_at) AS accept_s,
                   extract(epoch FROM closed_at - created_at) AS close_s,
                   CASE priority {accept_limit} END AS limit_s,
                   accepted_at IS NULL
                     AND created_at + CASE priority {accept_limit} END * interval '1 second'
                         < now() AS overdue
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
            (count(*) FILTER (WHERE status = 'closed'))::float8 / count(*) AS closure_rate,
            (count(*) FILTER (WHERE accept_s <= limit_s))::float8
              / nullif(count(*) FILTER (WHERE accept_s IS NOT NULL OR overdue), 0)
              AS on_time_accept_rate,
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
            "category": category,
            "priority": priority.value if priority else None,
        },
    )
    groups = [GroupStats.model_validate(row) for row in await cur.fetchall()]
    return Stats(start=start, end=end, group_by=group_by, groups=groups)


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
