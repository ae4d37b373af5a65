"""/api/v1/watchlists and /api/v1/id-reads: personal data, for the roles that need it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from api.auth import Principal
from api.deps import Conn, Limit
from api.openapi import refusals
from api.permissions import Capability, allowed
from hub.errors import Conflict, Forbidden, Invalid
from hub.secret import hmac_key
from hub.times import Moment
from idcard import numbers as idcard
from idcard import watchlists
from idcard.reads import IdReadOut, find_reads

router = APIRouter(tags=["personal data"])
# Integrators and viewers never see who was read where.
PersonalReader = Annotated[Principal, Depends(allowed(Capability.READ_ID_CARDS))]
ListManager = Annotated[Principal, Depends(allowed(Capability.MANAGE_WATCHLISTS))]


@router.post("/watchlists", status_code=201, responses=refusals(Conflict))
async def create_watchlist(
    body: watchlists.WatchlistIn, who: ListManager, conn: Conn
) -> watchlists.Watchlist:
    if not body.area_prefix.startswith(who.area_prefix):
        raise Forbidden(
            f"a watch list for {body.area_prefix or 'all areas'} is wider than your scope",
            field="area_prefix",
        )
    return await watchlists.create_watchlist(conn, body)


@router.get("/watchlists")
async def list_watchlists(who: PersonalReader, conn: Conn) -> list[watchlists.Watchlist]:
    return await watchlists.list_watchlists(conn, scope=who.area_prefix)


@router.post("/watchlists/{list_id}/entries")
async def add_entries(
    list_id: int, body: watchlists.EntriesIn, request: Request, who: ListManager, conn: Conn
) -> watchlists.EntriesReport:
    """Add ID numbers; only their keyed hashes and masks are stored."""
    secret = hmac_key(request.app.state.settings)
    return await watchlists.add_entries(conn, list_id, body, secret=secret, scope=who.area_prefix)


@router.get("/watchlists/{list_id}/entries")
async def list_entries(list_id: int, who: ListManager, conn: Conn) -> list[watchlists.Entry]:
    return await watchlists.list_entries(conn, list_id, scope=who.area_prefix)


@router.delete("/watchlists/{list_id}/entries/{id_hash}", status_code=204)
async def remove_entry(list_id: int, id_hash: str, who: ListManager, conn: Conn) -> Response:
    await watchlists.remove_entry(conn, list_id, id_hash, scope=who.area_prefix)
    return Response(status_code=204)


@router.delete("/watchlists/{list_id}", status_code=204)
async def delete_watchlist(list_id: int, who: ListManager, conn: Conn) -> Response:
    await watchlists.delete_watchlist(conn, list_id, scope=who.area_prefix)
    return Response(status_code=204)


@router.get("/id-reads")
async def id_reads(
    who: PersonalReader,
    conn: Conn,
    id_hash: Annotated[str | None, Query(pattern=r"^[0-9a-f]{64}$")] = None,
    id_masked: Annotated[str | None, Query(pattern=r"^\d{4}\*{10}[\dXx]{4}$")] = None,
    since: Moment | None = None,
    until: Moment | None = None,
    limit: Limit = 100,
) -> list[IdReadOut]:
    """Reads by hash or masked number, newest first, within the caller's area."""
    return await find_reads(
        conn,
        scope=who.area_prefix,
        id_hash=id_hash,
        id_masked=idcard.ascii_digits(id_masked).upper() if id_masked else None,
        since=since,
        until=until,
        limit=limit,
    )


class NumberLookup(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id_number: Annotated[str, Field(max_length=64)]
    limit: Annotated[int, Field(ge=1, le=500)] = 100


@router.post("/id-reads/search")
async def search_by_number(
    body: NumberLookup, request: Request, who: PersonalReader, conn: Conn
) -> list[IdReadOut]:
    """Look a number up without it appearing in a URL or a log: it is hashed here."""
    try:
        number = idcard.normalise(body.id_number)
    except idcard.NotAnIdNumber as exc:
        raise Invalid(str(exc), field="id_number") from None
    hashed = idcard.id_hash(hmac_key(request.app.state.settings), number)
    return await find_reads(conn, scope=who.area_prefix, id_hash=hashed, limit=body.limit)
