"""/api/v1/silences: mute matching signals for a while (drills, repairs)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends

from api.auth import Principal, allow
from api.deps import Cursor, DbPool, Limit, Reader
from api.tokens import Role
from hub.paging import Page
from rules.silences import Silence, SilenceIn, create_silence, expire_silence, page_silences

router = APIRouter(prefix="/silences", tags=["rules"])
Silencer = Annotated[
    Principal, Depends(allow(frozenset({Role.ADMIN, Role.OPERATOR, Role.DISPATCHER})))
]


@router.post("", status_code=201)
async def create(body: SilenceIn, who: Silencer, pool: DbPool) -> Silence:
    """Signals matching `matcher` between `starts_at` and `ends_at` open no incidents."""
    who.require_area(body.matcher.area_prefix)
    async with pool.connection() as conn:
        return await create_silence(conn, body, by=who.name)


@router.get("")
async def list_all(
    who: Reader, pool: DbPool, active: bool = False, limit: Limit = 100, cursor: Cursor = None
) -> Page[Silence]:
    """Silences in the caller's area, newest first; `active=true`: only those in force now."""
    async with pool.connection() as conn:
        return await page_silences(
            conn,
            scope=who.area_prefix,
            in_force_at=datetime.now(UTC) if active else None,
            limit=limit,
            cursor=cursor,
        )


@router.delete("/{silence_id}")
async def expire(silence_id: int, who: Silencer, pool: DbPool) -> Silence:
    """End a silence now."""
    async with pool.connection() as conn:
        return await expire_silence(conn, silence_id, scope=who.area_prefix, now=datetime.now(UTC))
