"""A dispatched unit's link: `/u/{token}` is a small page for a phone, and
`/api/v1/unit-link` says (to the link's bearer) which incident it is for and what it may do
now. The page acts through `/api/v1/incidents/{id}/actions` with the same token."""

from __future__ import annotations

from importlib.resources import files
from typing import Annotated

from fastapi import APIRouter, Depends, Path
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from api.auth import Principal, allow
from api.deps import DbPool
from api.tokens import Role
from incidents import store
from incidents.models import Incident
from incidents.states import Action, allowed_actions

api_router = APIRouter(tags=["notifications"])
page_router = APIRouter()
LinkHolder = Annotated[Principal, Depends(allow(frozenset({Role.UNIT_LINK})))]
_PAGE = files("api").joinpath("unit_page.html").read_text(encoding="utf-8")
_UNIT_ACTIONS = (Action.ACKNOWLEDGE, Action.START, Action.RESOLVE)


class UnitLinkView(BaseModel):
    unit_id: str
    incident: Incident
    actions: list[Action]


@api_router.get("/unit-link")
async def unit_link(who: LinkHolder, pool: DbPool) -> UnitLinkView:
    assert who.incident_id is not None
    async with pool.connection() as conn:
        incident = await store.get_incident(conn, who.incident_id, scope=who.area_prefix)
    possible = set(allowed_actions(incident.status))
    return UnitLinkView(unit_id=who.name.removeprefix("unit:"), incident=incident,
                        actions=[a for a in _UNIT_ACTIONS if a in possible])  # fmt: skip


@page_router.get("/u/{token}", response_class=HTMLResponse, include_in_schema=False)
async def unit_page(token: Annotated[str, Path(max_length=80)]) -> HTMLResponse:
    """The page checks nothing itself: the API answers its calls, or says the link expired."""
    return HTMLResponse(_PAGE, headers={"Cache-Control": "no-store",
                                        "Referrer-Policy": "no-referrer"})  # fmt: skip
