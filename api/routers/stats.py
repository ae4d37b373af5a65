"""/api/v1/stats: how the command centres are doing."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from psycopg import AsyncConnection
from psycopg.rows import DictRow
from pydantic import BaseModel, Field

from api.deps import AreaFilter, Category, Conn, Reader
from hub import signal_log
from hub.contracts import Priority
from hub.errors import Invalid
from hub.times import Moment, hub_zone
from incidents.sheet import stats_sheet
from incidents.stats import AreaLevel, GroupBy, Stats, incident_stats
from incidents.today import (
    Hourly,
    TodayIncidents,
    day_before,
    hourly_counts,
    midnight,
    today_incidents,
)
from ingest.state_reads import OnlineCount, online_counts

router = APIRouter(tags=["stats"])
DEFAULT_SPAN = timedelta(days=30)


class StatsParams:
    """The query of /stats and /stats.csv."""

    def __init__(
        self,
        start: Annotated[
            Moment | None, Query(alias="from", description="default: to − 30 days")
        ] = None,
        end: Annotated[Moment | None, Query(alias="to", description="default: now")] = None,
        group_by: GroupBy = "none",
        area: AreaFilter = None,
        category: Category = None,
        priority: Priority | None = None,
        level: Annotated[
            AreaLevel,
            Query(
                description="group_by=area: the level areas are rolled up to (a street's"
                " communities into the street)"
            ),
        ] = "community",
    ) -> None:
        self.now = datetime.now(UTC)
        self.end = end or self.now
        self.start = start or self.end - DEFAULT_SPAN
        if self.end <= self.start:
            raise Invalid("to must be after from", field="to")
        self.group_by = group_by
        self.area = area
        self.category = category
        self.priority = priority
        self.level: AreaLevel = level

    async def run(self, conn: AsyncConnection[DictRow], scope: str) -> Stats:
        return await incident_stats(
            conn,
            scope=scope,
            start=self.start,
            end=self.end,
            now=self.now,
            group_by=self.group_by,
            area=self.area,
            category=self.category,
            priority=self.priority,
            level=self.level,
        )


StatsQuery = Annotated[StatsParams, Depends()]


@router.get("/stats")
async def stats(who: Reader, conn: Conn, query: StatsQuery) -> Stats:
    """Incidents created in [from, to) (by default the last 30 days; the answer says which
    range it used): counts by state, on-time acceptance and closure (docs/api.md, Statistics, for
    the definitions), mean and p90 time to accept and to close, mean rating; per area,
    category or priority. `group_by=unit`: per summoned unit (吹哨报到), summoned, reported,
    reported_on_time, resolved, mean_rating, flags; `group_by=area` adds whistles by level,
    mean_whistle_rating and residents' satisfaction."""
    return await query.run(conn, who.area_prefix)


@router.get("/stats.csv", response_class=Response, responses={200: {"content": {"text/csv": {}}}})
async def stats_csv(who: Reader, conn: Conn, query: StatsQuery) -> Response:
    """The same figures as a CSV sheet (the monthly 考核 sheet with `group_by=unit` or `area`)."""
    found = await query.run(conn, who.area_prefix)
    name = f"stats-{found.group_by}-{found.start:%Y%m%d}-{found.end:%Y%m%d}.csv"
    return Response(
        stats_sheet(found),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


# Signal kinds that say all is well or count rather than alarm: left out of today's alarms.
QUIET_KINDS = (
    "device_online",
    "smoke_alarm_cleared",
    "smoke_test",
    "stream_restored",
    "line_crossing",
)


class TodayStats(BaseModel):
    """Today's figures for the wall (大屏), by the hub's clock (SB_TIMEZONE)."""

    day: date
    start: datetime = Field(description="midnight today")
    now: datetime
    alarms: int = Field(description="signals today that are alarms (not QUIET_KINDS)")
    alarms_by_kind: dict[str, int]
    alarms_hourly: Hourly
    incidents: TodayIncidents
    devices: OnlineCount = Field(description="enabled sensors and readers online now")
    cameras: OnlineCount = Field(description="enabled cameras and GB/T 28181 devices online now")


@router.get("/stats/today")
async def stats_today(who: Reader, conn: Conn, area: AreaFilter = None) -> TodayStats:
    """Today's figures within the caller's area (and `area`) for the wall: alarms by signal
    kind and by hour against yesterday's; incidents opened and closed today (办结率 = closed ÷
    opened), on-time acceptance of today's (as /stats defines it), open incidents by whistle;
    devices and cameras online now."""
    zone = hub_zone()
    now = datetime.now(UTC)
    start = midnight(now, zone)
    rows = await signal_log.hourly_kinds(
        conn,
        scope=who.area_prefix,
        area=area,
        since=day_before(start, zone),
        until=now,
        zone=zone.key,
        excluded=QUIET_KINDS,
    )
    incidents = await today_incidents(
        conn, scope=who.area_prefix, area=area, start=start, now=now, zone=zone
    )
    online = await online_counts(conn, scope=who.area_prefix, area=area)
    today = now.astimezone(zone).date()
    by_kind: dict[str, int] = {}
    for row in rows:
        if row["day"] == today:
            by_kind[row["kind"]] = by_kind.get(row["kind"], 0) + row["n"]
    return TodayStats(
        day=today,
        start=start,
        now=now,
        alarms=sum(by_kind.values()),
        alarms_by_kind=dict(sorted(by_kind.items(), key=lambda kv: (-kv[1], kv[0]))),
        alarms_hourly=hourly_counts(rows, now.astimezone(zone)),
        incidents=incidents,
        devices=online["devices"],
        cameras=online["cameras"],
    )
