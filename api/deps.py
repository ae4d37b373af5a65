"""Shared route dependencies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Query, Request
from psycopg import AsyncConnection
from psycopg.rows import DictRow

from api.auth import Principal
from api.permissions import Capability, allowed
from hub.area_codes import check_area_prefix
from hub.db import Pool
from hub.errors import Invalid
from hub.paging import MAX_LIMIT


def get_pool(request: Request) -> Pool:
    pool: Pool = request.app.state.pool
    return pool


async def connection(request: Request) -> AsyncIterator[AsyncConnection[DictRow]]:
    """A connection of the pool for the route, taken once the caller is known (declare it
    after `who`) and handed back when the route returns: committed if it returned, rolled
    back if it raised, as `async with pool.connection()` does. A transaction the route needs
    it opens itself (`async with conn.transaction()`)."""
    async with get_pool(request).connection() as conn:
        yield conn


def area_filter(
    area: Annotated[str | None, Query(description="area code prefix")] = None,
) -> str | None:
    if area is None:
        return None
    try:
        return check_area_prefix(area)
    except ValueError as exc:
        raise Invalid(str(exc), field="area") from None


DbPool = Annotated[Pool, Depends(get_pool)]
# Handed back when the route function returns, before the answer is sent: what it wrote is
# committed by then.
Conn = Annotated[AsyncConnection[DictRow], Depends(connection, scope="function")]
Category = Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
Cursor = Annotated[
    str | None,
    Query(max_length=128, pattern=r"^[A-Za-z0-9_-]*$", description="`next` of the page before"),
]
AreaFilter = Annotated[str | None, Depends(area_filter)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
# The callers of the capabilities many routers need (api/permissions.py says whose they are).
Reader = Annotated[Principal, Depends(allowed(Capability.READ))]
Registrar = Annotated[Principal, Depends(allowed(Capability.REGISTER))]
