"""/api/v1/stats: how the command centres are doing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from psycopg import AsyncConnection
from psycopg.rows import DictRow

from api.deps import AreaFilter, Category, Conn, Reader
from hub.contracts import Priority
from hub.errors import Invalid
from hub.times import Moment
from incidents.sheet import stats_sheet
from incidents.stats import AreaLevel, GroupBy, Stats, incident_stats

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
    range it used): counts by state, on-time acceptance and closure (README, Incidents, for
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
