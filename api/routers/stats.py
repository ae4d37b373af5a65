"""/api/v1/stats: how the command centres are doing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import AreaFilter, Category, DbPool, Reader
from hub.contracts import Priority
from hub.errors import Invalid
from hub.times import Moment
from incidents.stats import GroupBy, Stats, incident_stats

router = APIRouter(tags=["stats"])
DEFAULT_SPAN = timedelta(days=30)


@router.get("/stats")
async def stats(
    who: Reader,
    pool: DbPool,
    start: Annotated[
        Moment | None, Query(alias="from", description="default: to − 30 days")
    ] = None,
    end: Annotated[Moment | None, Query(alias="to", description="default: now")] = None,
    group_by: GroupBy = "none",
    area: AreaFilter = None,
    category: Category = None,
    priority: Priority | None = None,
) -> Stats:
    """Incidents created in [from, to) (by default the last 30 days; the answer says which
    range it used): counts by state, on-time acceptance and closure (README, Incidents, for
    the definitions), mean and p90 time to accept and to close, mean rating; per area,
    category or priority."""
    now = datetime.now(UTC)
    end = end or now
    start = start or end - DEFAULT_SPAN
    if end <= start:
        raise Invalid("to must be after from", field="to")
    async with pool.connection() as conn:
        return await incident_stats(
            conn,
            scope=who.area_prefix,
            start=start,
            end=end,
            now=now,
            group_by=group_by,
            area=area,
            category=category,
            priority=priority,
        )
