"""Camera zones: named polygons (or a two-point line) in normalised 0..1 image coordinates."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from shapely.geometry import Polygon
from shapely.validation import explain_validity

from devices.zone_params import ZoneName, parse_params

Coordinate = Annotated[float, Field(ge=0.0, le=1.0)]
Point = tuple[Coordinate, Coordinate]


class ZoneKind(StrEnum):
    RESTRICTED = "restricted"
    FIRE_LANE = "fire_lane"
    ELEVATOR = "elevator"
    CROWD = "crowd"
    LINE = "line"


class Zone(BaseModel):
    """One analytics zone of a camera; `params` holds the analytic's knobs."""

    model_config = ConfigDict(extra="forbid")

    name: ZoneName
    kind: ZoneKind
    polygon: Annotated[list[Point], Field(max_length=64)]
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_shape(self) -> Zone:
        parse_params(self.kind.value, self.params)
        if self.kind is ZoneKind.LINE:
            if len(self.polygon) != 2:
                raise ValueError(f"a line zone has exactly 2 points, got {len(self.polygon)}")
            if self.polygon[0] == self.polygon[1]:
                raise ValueError("a line zone needs two different points")
            return self
        if len(self.polygon) < 3:
            raise ValueError(
                f"a {self.kind.value} zone needs a polygon of at least 3 points,"
                f" got {len(self.polygon)}"
            )
        shape = Polygon(self.polygon)
        if not shape.is_valid:
            raise ValueError(f"polygon is not simple: {explain_validity(shape)}")
        if shape.area <= 0:
            raise ValueError("polygon has no area")
        return self
