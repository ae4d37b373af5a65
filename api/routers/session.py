"""/api/v1/me: who the token is, for the console (what its role may do decides what it shows)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from api.deps import Reader
from api.permissions import INCIDENT_ACTIONS, Capability, capabilities
from api.tokens import Role
from incidents.states import Action

router = APIRouter(tags=["session"])


class Me(BaseModel):
    name: str
    role: Role
    area_prefix: str = Field(description="what the token sees: '' for all areas")
    unit_id: str | None = Field(description="a grid worker's unit")
    map_tiles: str | None = Field(description="SB_MAP_TILES: the console's base map, if any")
    capabilities: list[Capability] = Field(description="what its role may do (design §6)")
    incident_actions: list[Action] = Field(
        description="the actions its role takes on incidents, where an incident's state and"
        " scope allow (each incident's `allowed_actions` says which, now)"
    )


@router.get("/me")
async def me(who: Reader, request: Request) -> Me:
    return Me(
        name=who.name,
        role=who.role,
        area_prefix=who.area_prefix,
        unit_id=who.unit_id,
        map_tiles=request.app.state.settings.map_tiles,
        capabilities=capabilities(who.role),
        incident_actions=[a for a in Action if a in INCIDENT_ACTIONS[who.role]],
    )
