"""/api/v1/areas/{code}/boundary, /api/v1/areas/{code}/buildings and /api/v1/boundaries:
the outlines the map (一张图) draws, uploaded as GeoJSON (devices.geojson says what is
accepted)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Response

from api.auth import Principal
from api.deps import AreaFilter, Conn, Reader
from api.permissions import Capability, allowed
from devices import boundaries
from devices.boundaries import AreaBoundary, AreaBuildings, MapLayer
from devices.geojson import BoundaryIn, BuildingsIn, buildings_of, outline
from hub.area_codes import check_area_code
from hub.errors import Invalid

router = APIRouter(tags=["areas"])
Drawer = Annotated[Principal, Depends(allowed(Capability.DRAW_BOUNDARIES))]

_GEOJSON_ERRORS: dict[int | str, dict[str, Any]] = {
    422: {
        "description": "not GeoJSON of the kind taken, or a shape the map cannot draw: a ring"
        " with fewer than 4 positions, not closed, crossing itself or enclosing no area;"
        " holes outside their polygon; polygons that overlap; a longitude outside -180..180"
        " or a latitude outside -90..90. `fields` names the place in the body."
    }
}
BoundaryBody = Annotated[
    BoundaryIn,
    Body(
        description="a Polygon, MultiPolygon, Feature or FeatureCollection, [longitude, latitude]"
    ),
]
_SCOPED: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such area in the caller's area, or nothing stored for it"}
}


def _code(code: str) -> str:
    try:
        return check_area_code(code)
    except ValueError as exc:
        raise Invalid(str(exc), field="code") from None


@router.put("/areas/{code}/boundary", responses={**_GEOJSON_ERRORS, **_SCOPED})
async def set_boundary(
    code: str,
    body: BoundaryBody,
    who: Drawer,
    conn: Conn,
) -> AreaBoundary:
    """Set (or replace) the area's boundary: a community's, a street's or a district's, within
    the caller's area. Stored as one MultiPolygon (the parts of a FeatureCollection together,
    altitudes dropped)."""
    return await boundaries.set_boundary(conn, _code(code), outline(body), scope=who.area_prefix)


@router.get("/areas/{code}/boundary", responses=_SCOPED)
async def get_boundary(code: str, who: Reader, conn: Conn) -> AreaBoundary:
    return await boundaries.get_boundary(conn, _code(code), scope=who.area_prefix)


@router.delete("/areas/{code}/boundary", status_code=204, responses=_SCOPED)
async def delete_boundary(code: str, who: Drawer, conn: Conn) -> Response:
    await boundaries.delete_boundary(conn, _code(code), scope=who.area_prefix)
    return Response(status_code=204)


@router.put("/areas/{code}/buildings", responses={**_GEOJSON_ERRORS, **_SCOPED})
async def set_buildings(code: str, body: BuildingsIn, who: Drawer, conn: Conn) -> AreaBuildings:
    """Set (or replace) a community's building footprints: a FeatureCollection with one
    Polygon or MultiPolygon Feature per building and its `name` property (5栋). Only a
    community (12 digits) has buildings."""
    return await boundaries.set_buildings(
        conn, _code(code), buildings_of(body), scope=who.area_prefix
    )


@router.get("/areas/{code}/buildings", responses=_SCOPED)
async def get_buildings(code: str, who: Reader, conn: Conn) -> AreaBuildings:
    return await boundaries.get_buildings(conn, _code(code), scope=who.area_prefix)


@router.delete("/areas/{code}/buildings", status_code=204, responses=_SCOPED)
async def delete_buildings(code: str, who: Drawer, conn: Conn) -> Response:
    await boundaries.delete_buildings(conn, _code(code), scope=who.area_prefix)
    return Response(status_code=204)


@router.get("/boundaries")
async def map_layer(who: Reader, conn: Conn, area: AreaFilter = None) -> MapLayer:
    """Every boundary and building footprint under the caller's area (and `area`), with
    names, as one GeoJSON FeatureCollection for the map: each Feature's `properties` say
    `kind` (area or building), `name`, `code` (the area's; a building's community) and
    `level`. Districts come first, then streets, communities and buildings."""
    return await boundaries.map_layer(conn, scope=who.area_prefix, area=area)
