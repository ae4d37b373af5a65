"""/api/v1/silences: mute matching signals for a while (drills, repairs)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends

from api.auth import Principal
from api.deps import Conn, Cursor, Limit, Reader
from api.permissions import Capability, allowed
from hub.paging import Page
from rules.silences import Silence, SilenceIn, create_silence, expire_silence, page_silences

router = APIRouter(prefix="/silences", tags=["rules"])
Silencer = Annotated[Principal, Depends(allowed(Capability.SILENCE))]


@router.post("", status_code=201)
async def create(body: SilenceIn, who: Silencer, conn: Conn) -> Silence:
    """Signals matching `matcher` between `starts_at` and `ends_at` open no incidents."""
    who.require_area(body.matcher.area_prefix)
    return await create_silence(conn, body, by=who.name)


@router.get("")
async def list_all(
    who: Reader, conn: Conn, active: bool = False, limit: Limit = 100, cursor: Cursor = None
) -> Page[Silence]:
    """Silences in the caller's area, newest first; `active=true`: only those in force now."""
    return await page_silences(
        conn,
        scope=who.area_prefix,
        in_force_at=datetime.now(UTC) if active else None,
        limit=limit,
        cursor=cursor,
    )


@router.delete("/{silence_id}")
async def expire(silence_id: int, who: Silencer, conn: Conn) -> Silence:
    """End a silence now."""
    return await expire_silence(conn, silence_id, scope=who.area_prefix, now=datetime.now(UTC))
