"""Area outlines as operators upload them: GeoJSON (RFC 7946) in WGS 84, checked so that the
map never has to draw a broken shape, and normalised to one form for storage.

A boundary may come as a bare Polygon or MultiPolygon, a Feature holding one, or a
FeatureCollection of such Features (the parts of one area, as GIS tools export them). Every
position is [longitude, latitude] (an altitude, if any, is dropped); every linear ring has at
least four positions, is closed (its last position is its first), encloses an area and does
not cross itself; the rings of a polygon fit together (holes inside the outer ring) and the
polygons of one outline do not overlap. A failed check is a validation error that says which
and where, so an operator can fix the file in their GIS tool.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictFloat, model_validator
from shapely.geometry import MultiPolygon, Polygon
from shapely.validation import explain_validity

from hub.text import PlainText

LonLat = tuple[float, float]
_WHERE = re.compile(r"^(?P<reason>.*)\[(?P<x>\S+) (?P<y>\S+)\]$")


def _position(value: list[float]) -> list[float]:
    if not 2 <= len(value) <= 3:
        raise ValueError(
            "a position is [longitude, latitude] (or [longitude, latitude, altitude]),"
            f" got {len(value)} number(s)"
        )
    lon, lat = value[0], value[1]
    # Written as "not within" so that NaN, which compares false, is refused too.
    if not -180 <= lon <= 180:
        raise ValueError(
            f"longitude {lon} is out of range (-180 to 180); positions are [longitude, latitude]"
        )
    if not -90 <= lat <= 90:
        raise ValueError(
            f"latitude {lat} is out of range (-90 to 90); positions are [longitude, latitude]"
        )
    return value


def _explain(shape: Polygon | MultiPolygon) -> str:
    """GEOS's reason ('Self-intersection[113.9 22.7]') as 'self-intersection at [113.9, 22.7]'."""
    reason = str(explain_validity(shape))
    found = _WHERE.match(reason)
    if not found:
        return reason.lower()
    return f"{found['reason'].lower()} at [{found['x']}, {found['y']}]"


def _flat(ring: list[list[float]]) -> list[LonLat]:
    return [(p[0], p[1]) for p in ring]


def _ring(ring: list[list[float]]) -> list[list[float]]:
    if len(ring) < 4:
        raise ValueError(
            "a linear ring needs at least 4 positions (3 corners and the first again),"
            f" got {len(ring)}"
        )
    if ring[0] != ring[-1]:
        raise ValueError(
            f"the ring is not closed: its last position {ring[-1]} is not its first {ring[0]}"
        )
    shape = Polygon(_flat(ring))
    if shape.convex_hull.area == 0:  # not shape.area: a figure of eight's halves cancel out
        raise ValueError("the ring encloses no area (its positions lie on one line)")
    if not shape.is_valid:
        raise ValueError(f"the ring crosses itself: {_explain(shape)}")
    return ring


Position = Annotated[list[StrictFloat], AfterValidator(_position)]
Ring = Annotated[list[Position], AfterValidator(_ring)]


def _shape(rings: list[list[list[float]]]) -> Polygon:
    return Polygon(_flat(rings[0]), [_flat(hole) for hole in rings[1:]])


def _polygon(rings: list[list[list[float]]]) -> list[list[list[float]]]:
    shape = _shape(rings)
    if not shape.is_valid:
        raise ValueError(f"the polygon's rings do not fit together: {_explain(shape)}")
    return rings


def check_parts(polygons: list[list[list[list[float]]]]) -> None:
    """The polygons of one outline must not overlap (nor share an edge: merge those)."""
    if len(polygons) < 2:
        return
    shape = MultiPolygon([_shape(rings) for rings in polygons])
    if not shape.is_valid:
        raise ValueError(f"the polygons overlap or share an edge: {_explain(shape)}")


def _parts(polygons: list[list[list[list[float]]]]) -> list[list[list[list[float]]]]:
    check_parts(polygons)
    return polygons


PolygonRings = Annotated[
    list[Ring],
    Field(min_length=1, description="the outer ring, then any holes"),
    AfterValidator(_polygon),
]


class GeoPolygon(BaseModel):
    type: Literal["Polygon"]
    coordinates: PolygonRings


class GeoMultiPolygon(BaseModel):
    type: Literal["MultiPolygon"]
    coordinates: Annotated[list[PolygonRings], Field(min_length=1), AfterValidator(_parts)]


Geometry = Annotated[GeoPolygon | GeoMultiPolygon, Field(discriminator="type")]


class GeoFeature(BaseModel):
    type: Literal["Feature"]
    geometry: Geometry
    properties: dict[str, Any] | None = None


class GeoFeatureCollection(BaseModel):
    type: Literal["FeatureCollection"]
    features: Annotated[list[GeoFeature], Field(min_length=1, max_length=10_000)]

    @model_validator(mode="after")
    def _parts_together(self) -> GeoFeatureCollection:
        check_parts([rings for feature in self.features for rings in _polygons(feature.geometry)])
        return self


BoundaryIn = Annotated[
    GeoPolygon | GeoMultiPolygon | GeoFeature | GeoFeatureCollection,
    Field(discriminator="type"),
]


class Outline(BaseModel):
    """A boundary or footprint as stored and served: always a 2-D MultiPolygon."""

    type: Literal["MultiPolygon"] = "MultiPolygon"
    coordinates: list[list[list[LonLat]]]


def _polygons(geometry: GeoPolygon | GeoMultiPolygon) -> list[list[list[list[float]]]]:
    return [geometry.coordinates] if isinstance(geometry, GeoPolygon) else geometry.coordinates


def outline(body: GeoPolygon | GeoMultiPolygon | GeoFeature | GeoFeatureCollection) -> Outline:
    """Whatever form the boundary came in, as one MultiPolygon."""
    if isinstance(body, GeoFeatureCollection):
        polygons = [rings for f in body.features for rings in _polygons(f.geometry)]
    elif isinstance(body, GeoFeature):
        polygons = _polygons(body.geometry)
    else:
        polygons = _polygons(body)
    return Outline(coordinates=[[_flat(ring) for ring in rings] for rings in polygons])


# --- building footprints -------------------------------------------------------------------

BuildingName = Annotated[PlainText, Field(min_length=1, max_length=200)]


class BuildingProperties(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True)

    name: BuildingName = Field(description="shown on the map: 5栋, 幸福楼")


class BuildingFeature(BaseModel):
    type: Literal["Feature"]
    geometry: Geometry
    properties: BuildingProperties


class BuildingsIn(BaseModel):
    """A community's buildings: a FeatureCollection, one Feature per building, each with a
    `name` property."""

    type: Literal["FeatureCollection"]
    features: Annotated[list[BuildingFeature], Field(min_length=1, max_length=5_000)]


class Building(BaseModel):
    name: str
    geometry: Outline


def buildings_of(body: BuildingsIn) -> list[Building]:
    return [Building(name=f.properties.name, geometry=outline(f.geometry)) for f in body.features]
