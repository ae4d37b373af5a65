"""/api/v1/me: who the token is, for the console (its role and area decide what it shows)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from api.deps import Reader
from api.tokens import Role

router = APIRouter(tags=["session"])


class Me(BaseModel):
    name: str
    role: Role
    area_prefix: str = Field(description="what the token sees: '' for all areas")
    unit_id: str | None = Field(description="a grid worker's unit")
    map_tiles: str | None = Field(description="SB_MAP_TILES: the console's base map, if any")


@router.get("/me")
async def me(who: Reader, request: Request) -> Me:
    return Me(
        name=who.name,
        role=who.role,
        area_prefix=who.area_prefix,
        unit_id=who.unit_id,
        map_tiles=request.app.state.settings.map_tiles,
    )
