"""/api/v1/signals: what devices and cameras raised (design §3), newest first, by area.

Signals of ID-card reads carry the card's keyed hash and masked number, never the number
(design §3); they are shown to the roles that see ID-card reads only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel

from api.auth import Principal
from api.deps import AreaFilter, Conn, Cursor, Limit, Reader
from api.openapi import refusals
from api.permissions import Capability, may
from hub import signal_log
from hub.contracts import KINDS, Signal
from hub.errors import NotFound
from hub.paging import Page, decode_int_cursor, encode_cursor
from hub.times import Moment
from incidents import store

router = APIRouter(tags=["signals"])
SignalKind = Annotated[
    str | None,
    Query(
        description="a signal kind",
        json_schema_extra={"enum": sorted(KINDS)},
        pattern=r"^[a-z_]{1,40}$",
    ),
]
DeviceId = Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class SignalOut(BaseModel):
    id: int
    ts: datetime
    received_at: datetime
    kind: str
    source_id: str
    source_type: str
    area: str
    site: str | None
    building: str | None
    value: float | None
    confidence: float
    attrs: dict[str, Any]
    tags: dict[str, Any]


def shown(signal: Signal, who: Principal) -> SignalOut | None:
    """The signal as the caller may see it; None when it may not see it at all."""
    if not who.covers(signal.area):
        return None
    if signal.source_type == "id_reader" and not may(who, Capability.READ_ID_CARDS):
        return None
    assert signal.id is not None and signal.received_at is not None
    return SignalOut(
        id=signal.id,
        ts=signal.ts,
        received_at=signal.received_at,
        kind=signal.kind,
        source_id=signal.source_id,
        source_type=signal.source_type,
        area=signal.area,
        site=signal.site,
        building=signal.building,
        value=signal.value,
        confidence=signal.confidence,
        attrs=signal.attrs,
        tags=signal.tags,
    )


@router.get("/signals")
async def list_signals(
    who: Reader,
    conn: Conn,
    kind: SignalKind = None,
    source_id: DeviceId = None,
    source_type: Annotated[str | None, Query(pattern=r"^(smoke_sensor|id_reader|camera)$")] = None,
    area: AreaFilter = None,
    since: Moment | None = None,
    until: Moment | None = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Page[SignalOut]:
    """Newest first, within the caller's area; `since`/`until` by the signal's own time."""
    if source_type == "id_reader" and not may(who, Capability.READ_ID_CARDS):
        return Page[SignalOut](items=[])
    found = await signal_log.search(
        conn,
        scope=who.area_prefix,
        kind=kind,
        source_id=source_id,
        source_type=source_type,
        area=area,
        since=since,
        until=until,
        before_id=decode_int_cursor(cursor),
        limit=limit,
        hidden_source_type=None if may(who, Capability.READ_ID_CARDS) else "id_reader",
    )
    more = len(found) > limit
    page = found[:limit]
    items = [s for s in (shown(x, who) for x in page) if s is not None]
    last = page[-1].id if page else None
    return Page[SignalOut](items=items, next=encode_cursor(str(last)) if more and last else None)


@router.get("/signals/{signal_id}", responses=refusals((NotFound, "no such signal here")))
async def get_signal(
    signal_id: Annotated[int, Path(ge=1, le=2**63 - 1)], who: Reader, conn: Conn
) -> SignalOut:
    found = await signal_log.read_ids(conn, [signal_id])
    out = shown(found[0], who) if found else None
    if out is None:
        raise NotFound(f"signal {signal_id} not found")
    return out


@router.get("/incidents/{incident_id}/signals", tags=["incidents"])
async def incident_signals(
    incident_id: Annotated[int, Path(ge=1, le=2**63 - 1)], who: Reader, conn: Conn
) -> list[SignalOut]:
    """The signals an incident holds (it opened with and attached since), oldest first."""
    ids = await store.signal_ids(conn, incident_id, scope=who.area_prefix)
    found = await signal_log.read_ids(conn, ids)
    return [s for s in (shown(x, who) for x in found) if s is not None]
