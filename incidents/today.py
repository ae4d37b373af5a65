"""Today's incident figures for the wall (大屏): what opened since midnight (hub time) and how
it is going, and what is open now, whenever it opened.

- `opened`: incidents created today; `closed`: of those, the ones closed by now;
  `closure_rate` (办结率) = closed ÷ opened.
- On-time acceptance (按时受理率) as the stats define it (incidents.stats), over today's.
- `open_by_priority`: every open incident in the area by whistle, today's or older.
- `hourly`: incidents created in each hour of today (None for hours still to come) and of
  yesterday, by the hub's clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from psycopg import AsyncConnection
from psycopg.rows import DictRow
from pydantic import BaseModel, Field

from hub.contracts import Priority
from incidents.stats import GroupStats, incident_stats


class Hourly(BaseModel):
    today: list[int | None] = Field(description="24 counts, hour 0 first; None: still to come")
    yesterday: list[int] = Field(description="24 counts, hour 0 first")


class TodayIncidents(BaseModel):
    opened: int
    closed: int
    closure_rate: float | None = Field(description="办结率: closed ÷ opened, of today's")
    accept_determined: int
    accepted_on_time: int
    on_time_accept_rate: float | None = Field(description="按时受理率, of today's")
    opened_by_category: dict[str, int]
    open_by_priority: dict[Priority, int] = Field(description="open now, whenever opened")
    open_total: int
    hourly: Hourly


async def today_incidents(
    conn: AsyncConnection[DictRow],
    *,
    scope: str,
    area: str | None,
    start: datetime,
    now: datetime,
    zone: ZoneInfo,
) -> TodayIncidents:
    """The figures for [start, now), `start` being midnight today in `zone`."""
    stats = await incident_stats(
        conn, scope=scope, start=start, end=now, now=now, group_by="category", area=area
    )
    groups = [g for g in stats.groups if isinstance(g, GroupStats)]
    opened = sum(g.total for g in groups)
    closed = sum(g.by_status.get("closed", 0) for g in groups)
    determined = sum(g.accept_determined for g in groups)
    on_time = sum(g.accepted_on_time for g in groups)
    open_now = await _open_by_priority(conn, scope=scope, area=area)
    return TodayIncidents(
        opened=opened,
        closed=closed,
        closure_rate=closed / opened if opened else None,
        accept_determined=determined,
        accepted_on_time=on_time,
        on_time_accept_rate=on_time / determined if determined else None,
        opened_by_category={g.key: g.total for g in groups},
        open_by_priority=open_now,
        open_total=sum(open_now.values()),
        hourly=await _hourly(conn, scope=scope, area=area, start=start, now=now, zone=zone),
    )


async def _open_by_priority(
    conn: AsyncConnection[DictRow], *, scope: str, area: str | None
) -> dict[Priority, int]:
    cur = await conn.execute(
        "SELECT priority, count(*) AS n FROM incidents WHERE status <> 'closed'"
        " AND area LIKE %s AND area LIKE %s GROUP BY priority",
        (scope + "%", (area or "") + "%"),
    )
    found = {row["priority"]: row["n"] for row in await cur.fetchall()}
    return {p: found.get(p.value, 0) for p in Priority}


async def _hourly(
    conn: AsyncConnection[DictRow],
    *,
    scope: str,
    area: str | None,
    start: datetime,
    now: datetime,
    zone: ZoneInfo,
) -> Hourly:
    cur = await conn.execute(
        "SELECT (created_at AT TIME ZONE %(zone)s)::date AS day,"
        " extract(hour FROM created_at AT TIME ZONE %(zone)s)::int AS hour, count(*) AS n"
        " FROM incidents WHERE area LIKE %(scope)s AND area LIKE %(area)s"
        " AND created_at >= %(yesterday)s AND created_at < %(now)s GROUP BY 1, 2",
        {
            "start": start,
            "yesterday": day_before(start, zone),
            "now": now,
            "zone": zone.key,
            "scope": scope + "%",
            "area": (area or "") + "%",
        },
    )
    return hourly_counts(await cur.fetchall(), now.astimezone(zone))


def hourly_counts(rows: Iterable[Mapping[str, Any]], now: datetime) -> Hourly:
    """Rows of (day, hour, n), days in `now`'s zone, as 24 counts for today and for yesterday
    (rows of other days are left out); today's hours after the current one are None."""
    today: list[int | None] = [0 if h <= now.hour else None for h in range(24)]
    yesterday = [0] * 24
    for row in rows:
        if row["day"] == now.date():
            today[row["hour"]] = (today[row["hour"]] or 0) + row["n"]
        elif row["day"] == now.date() - timedelta(days=1):
            yesterday[row["hour"]] += row["n"]
    return Hourly(today=today, yesterday=yesterday)


def day_before(midnight: datetime, zone: ZoneInfo) -> datetime:
    """Midnight of the day before, in `zone` (23 or 25 hours back across a DST change)."""
    earlier = midnight.astimezone(zone).date() - timedelta(days=1)
    return datetime(earlier.year, earlier.month, earlier.day, tzinfo=zone)


def midnight(now: datetime, zone: ZoneInfo) -> datetime:
    local = now.astimezone(zone)
    return datetime(local.year, local.month, local.day, tzinfo=zone)
