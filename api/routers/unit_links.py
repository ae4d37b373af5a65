"""A dispatched or summoned unit's link: `/u/{token}` is a small page for a phone, and
`/api/v1/unit-link` says (to the link's bearer) which incident it is for, its 报到 record when
it was summoned, and what it may do now (报到 first). The page acts through
`/api/v1/incidents/{id}/actions` with the same token."""

from __future__ import annotations

from importlib.resources import files
from typing import Annotated

from fastapi import APIRouter, Depends, Path
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from api.auth import Principal
from api.deps import Conn
from api.permissions import Capability, allowed, allowed_actions, public_route
from incidents import store
from incidents.models import Incident, Summon
from incidents.states import Action

api_router = APIRouter(tags=["notifications"])
page_router = APIRouter()
LinkHolder = Annotated[Principal, Depends(allowed(Capability.HOLD_UNIT_LINK))]
# What the page offers, in its order: 报到 first.
_PAGE_ACTIONS = (
    Action.REPORT_IN,
    Action.ACKNOWLEDGE,
    Action.START,
    Action.RESOLVE,
    Action.RATE_WHISTLE,
)
_PAGE = files("api").joinpath("unit_page.html").read_text(encoding="utf-8")


class UnitLinkView(BaseModel):
    unit_id: str
    incident: Incident
    summon: Summon | None = Field(default=None, description="its 报到 record, when summoned")
    actions: list[Action]


def _actions(who: Principal, incident: Incident, summon: Summon | None) -> list[Action]:
    """What the unit may do now (api/permissions.py), 报到 first: a summoned unit reports in
    and rates its whistle; the unit the incident is with also starts and resolves it. A unit
    that has acknowledged is not asked to again."""
    possible = set(allowed_actions(who, incident))
    if summon is not None and summon.acknowledged_at is not None:
        possible.discard(Action.ACKNOWLEDGE)
    return [a for a in _PAGE_ACTIONS if a in possible]


@api_router.get("/unit-link")
async def unit_link(who: LinkHolder, conn: Conn) -> UnitLinkView:
    assert who.incident_id is not None and who.unit_id is not None
    incident = await store.get_incident(conn, who.incident_id, scope=who.area_prefix)
    summon = next((s for s in incident.summons if s.unit_id == who.unit_id), None)
    return UnitLinkView(
        unit_id=who.unit_id,
        incident=incident,
        summon=summon,
        actions=_actions(who, incident, summon),
    )


@page_router.get("/u/{token}", response_class=HTMLResponse, include_in_schema=False)
@public_route("a page for a phone: it calls the API with the link, which answers or refuses")
async def unit_page(token: Annotated[str, Path(max_length=80)]) -> HTMLResponse:
    """The page checks nothing itself: the API answers its calls, or says the link expired."""
    return HTMLResponse(
        _PAGE, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    )
