"""/api/v1/dead-letters: the messages the hub refused, with the reason, newest first, so an
integrator can see why a device's messages vanish (never their personal data: design §3)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from api.auth import Principal
from api.deps import Conn, Cursor, Limit
from api.permissions import Capability, allowed
from hub.paging import Page
from hub.times import Moment
from ingest.dead_letters import DeadLetter, list_dead_letters
from ingest.decode import Reason

router = APIRouter(tags=["devices"])
DeadLetterReader = Annotated[Principal, Depends(allowed(Capability.READ_DEAD_LETTERS))]


@router.get("/dead-letters")
async def dead_letters(
    who: DeadLetterReader,
    conn: Conn,
    device_id: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,64}$")] = None,
    reason: Reason | None = None,
    since: Annotated[Moment | None, Query(description="received at or after")] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Page[DeadLetter]:
    """Refused messages of devices in the caller's area (a message from an unregistered
    device counts in the area its topic names; a push no device was found for, in the
    pushing token's)."""
    return await list_dead_letters(
        conn,
        scope=who.area_prefix,
        device_id=device_id,
        reason=reason.value if reason else None,
        since=since,
        limit=limit,
        cursor=cursor,
    )
