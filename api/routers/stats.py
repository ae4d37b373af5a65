"""/api/v1/stats: how the command centres are doing."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import AreaFilter, DbPool, Reader
from hub.errors import Invalid
from incidents.stats import GroupBy, Stats, incident_stats
from rules.model import Priority

router = APIRouter(tags=["stats"])


@router.get("/stats")
async def stats(
    who: Reader,
    pool: DbPool,
    start: Annotated[datetime, Query(alias="from")],
    end: Annotated[datetime, Query(alias="to")],
    group_by: GroupBy = "none",
    area: AreaFilter = None,
    category: str | None = None,
    priority: Priority | None = None,
) -> Stats:
    """Incidents created in [from, to): counts by state, closure rate, on-time acceptance,
    mean and p90 time to accept and to close, mean rating; per area, category or priority."""
    if end <= start:
        raise Invalid("to must be after from", field="to")
    async with pool.connection() as conn:
        return await incident_stats(
            conn,
            scope=who.area_prefix,
            start=start,
            end=end,
            group_by=group_by,
            area=area,
            category=category,
            priority=priority,
        )
