"""The knobs of each zone kind (a zone's `params`), validated when the camera is registered.

Vocabulary follows Frigate where it has a word for it: `inertia` (frames a box must be inside
before it counts as present), `loitering_time`, and per-label `filters` with `min_score`,
`threshold` (the median score a track needs) and `min_area` / `max_area` (fractions of the frame).
"""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from hub.contracts import Schedule

Label = Annotated[str, Field(pattern=r"^[a-z][a-z0-9 _-]{0,31}$")]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
Seconds = Annotated[float, Field(ge=0.0, le=86_400.0)]

_NAME_PUNCTUATION = frozenset("_.- ")


def check_name(value: str) -> str:
    """Letters and digits of any script (`南门禁区`, `进`), spaces and `_ . -`; no control or
    direction-changing characters, no spaces around."""
    if value != value.strip():
        raise ValueError("a name has no spaces before or after it")
    for char in value:
        if unicodedata.category(char)[0] not in "LNM" and char not in _NAME_PUNCTUATION:
            raise ValueError(f"a name holds letters, digits, spaces and _ . - only, not {char!r}")
    return value


ZoneName = Annotated[
    str,
    Field(min_length=1, max_length=64, title="zone name, e.g. 南门禁区 or gate-north"),
    AfterValidator(check_name),
]
DirectionName = Annotated[
    str,
    Field(min_length=1, max_length=16, title="a crossing direction's name, e.g. 进 or in"),
    AfterValidator(check_name),
]

VEHICLES = ["car", "truck", "bus", "motorcycle"]
TWO_WHEELERS = ["bicycle", "motorcycle"]


class LabelFilter(BaseModel):
    """When a detection of one label is believed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_score: Fraction = 0.3
    threshold: Fraction = 0.45
    min_area: Fraction = 0.0
    max_area: Fraction = 1.0


class ZoneParams(BaseModel):
    """Knobs every zone kind shares."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    objects: Annotated[list[Label], Field(min_length=1, max_length=16)] = ["person"]
    inertia: Annotated[int, Field(ge=1, le=50)] = 3
    filters: dict[Label, LabelFilter] = Field(default_factory=dict)
    loitering_time: Seconds = 0.0  # 0: no loitering events from this zone

    def filter_for(self, label: str) -> LabelFilter:
        return self.filters.get(label, _DEFAULT_FILTER)


_DEFAULT_FILTER = LabelFilter()


class RestrictedParams(ZoneParams):
    """Intrusion: any of `objects` present in the zone (only inside `schedule` when given).
    Once per track; after the detector has seen the zone empty for `rearm_s`, whoever is in it
    next is a new intrusion, even on a track that was reported before."""

    schedule: Schedule | None = None
    rearm_s: Annotated[
        float, Field(ge=0.0, le=3600.0, title="a zone seen empty this long makes the next one new")
    ] = 4.0


class CrowdParams(ZoneParams):
    """Crowd: at least `min_persons` present for `for_s` seconds, counted on the latest
    detector frame's detections that score at least `count_score` (lower it for small people
    seen from high above)."""

    min_persons: Annotated[int, Field(ge=2, le=10_000)] = 10
    for_s: Annotated[Seconds, Field(alias="for")] = 3.0
    count_score: Annotated[
        float, Field(ge=0.0, le=1.0, title="a detection counts as a person from this score")
    ] = 0.3


class FireLaneParams(ZoneParams):
    """A vehicle standing still (moving less than `max_movement` of the frame) for `for_s`."""

    objects: Annotated[list[Label], Field(min_length=1, max_length=16)] = VEHICLES
    for_s: Annotated[Seconds, Field(alias="for")] = 60.0
    max_movement: Annotated[float, Field(gt=0.0, le=1.0)] = 0.03


class ElevatorParams(ZoneParams):
    """An e-bike (bicycle or motorcycle) inside the car."""

    objects: Annotated[list[Label], Field(min_length=1, max_length=16)] = TWO_WHEELERS


class LineParams(BaseModel):
    """A tripwire; `forward` is crossing from the left of the line (looking from its first point
    to its second) to its right."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    objects: Annotated[list[Label], Field(min_length=1, max_length=16)] = ["person"]
    filters: dict[Label, LabelFilter] = Field(default_factory=dict)
    forward: DirectionName = "forward"
    backward: DirectionName = "backward"
    # Hysteresis: where the object stands must be this far past the line (in heights of its
    # box), in this many detector frames in a row, before the crossing counts.
    margin: Annotated[
        float, Field(ge=0.0, le=1.0, title="distance past the line, in box heights")
    ] = 0.1
    frames: Annotated[int, Field(ge=1, le=10, title="frames in a row on the other side")] = 2
    max_gap_s: Annotated[
        float, Field(gt=0.0, le=60.0, title="a track unseen longer starts afresh on the line")
    ] = 3.0
    rebound_s: Annotated[
        float, Field(ge=0.0, le=60.0, title="a track crossing back within this is not counted")
    ] = 3.0

    def filter_for(self, label: str) -> LabelFilter:
        return self.filters.get(label, _DEFAULT_FILTER)

    @model_validator(mode="after")
    def _two_directions(self) -> LineParams:
        if self.forward == self.backward:
            raise ValueError(f"forward and backward need two names, both are {self.forward!r}")
        return self


PARAMS_BY_KIND: dict[str, type[BaseModel]] = {
    "restricted": RestrictedParams,
    "crowd": CrowdParams,
    "fire_lane": FireLaneParams,
    "elevator": ElevatorParams,
    "line": LineParams,
}


def parse_params(kind: str, params: dict[str, Any]) -> BaseModel:
    """The typed params of a zone kind; ValueError naming the bad field otherwise."""
    try:
        return PARAMS_BY_KIND[kind].model_validate(params)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(["params", *(str(p) for p in first["loc"])])
        raise ValueError(f"{where}: {str(first['msg']).removeprefix('Value error, ')}") from None
