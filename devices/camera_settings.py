"""What runs on one camera and how: analytics and models switched on or off, motion gating
tuned and masked (an on-screen clock, a tree in the wind), areas where objects are ignored,
how often the detector and the fire model run. Typed with bounds, in the manner of
Frigate's camera config: an unknown key is an error, not silently dropped."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from shapely.geometry import Polygon as Shape
from shapely.validation import explain_validity

from devices.zones import Point


def _check_polygon(points: list[Point]) -> list[Point]:
    if len(points) < 3:
        raise ValueError(f"a mask needs at least 3 points, got {len(points)}")
    shape = Shape(points)
    if not shape.is_valid:
        raise ValueError(f"mask is not simple: {explain_validity(shape)}")
    if shape.area <= 0:
        raise ValueError("mask has no area")
    return points


class Mask(BaseModel):
    """A polygon in normalised 0..1 image coordinates."""

    model_config = ConfigDict(extra="forbid")

    polygon: Annotated[list[Point], Field(max_length=64, title="points (x, y) in 0..1")]

    @model_validator(mode="after")
    def _shape(self) -> Mask:
        _check_polygon(self.polygon)
        return self


class MotionSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    threshold: int = Field(default=25, ge=1, le=255, title="grey-level change of a moving pixel")
    contour_area: int = Field(
        default=12, ge=1, le=5000, title="smallest moving blob, in 120-row thumbnail pixels"
    )
    masks: Annotated[list[Mask], Field(max_length=16)] = Field(
        default_factory=list, title="where motion is ignored (timestamps, trees, screens)"
    )


class RegionSettings(BaseModel):
    """Where the detector looks in frames larger than its input (Frigate's regions)."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["motion", "tiles", "full"] = Field(
        default="motion",
        title="motion: model-size crops around motion and tracked objects; tiles: a fixed"
        " overlapping grid (wide, high views full of small people); full: the whole frame",
    )
    full_frame_s: float = Field(
        default=5.0, ge=0.5, le=600, title="motion mode: a whole-frame pass at least this often"
    )
    max_regions: int = Field(
        default=6,
        ge=1,
        le=64,
        title="motion mode: more crops than this and the whole frame is used",
    )
    tile_overlap: float = Field(
        default=0.2, ge=0.0, le=0.5, title="tiles: how much neighbouring tiles overlap"
    )


class AnalyticsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fire: bool = Field(default=True, title="run the fire and smoke model (SB_FIRE_MODEL)")
    fire_interval_s: float = Field(
        default=1.0, ge=0.2, le=60, title="seconds between fire-model runs at most"
    )
    falls: bool = Field(default=True, title="run the pose model for falls (SB_POSE_MODEL)")
    tamper: bool = Field(default=True, title="report covered, defocused or moved views")


class CameraSettings(BaseModel):
    """`settings` of `POST /api/v1/cameras` and `PATCH /api/v1/cameras/{id}`."""

    model_config = ConfigDict(extra="forbid")

    detect_fps: float | None = Field(
        default=None,
        gt=0,
        le=30,
        title="detector runs per second at most (default: every analysed frame)",
    )
    motion: MotionSettings = Field(default_factory=MotionSettings)
    regions: RegionSettings = Field(default_factory=RegionSettings)
    object_masks: Annotated[list[Mask], Field(max_length=16)] = Field(
        default_factory=list,
        title="where detections are dropped (a poster of a person, a parked car's spot)",
    )
    analytics: AnalyticsSettings = Field(default_factory=AnalyticsSettings)
