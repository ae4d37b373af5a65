"""Request and response shapes of the registry (design §6)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    WithJsonSchema,
    model_validator,
)

from devices.camera_settings import CameraSettings
from devices.gb_ids import check_gb_id
from devices.zones import Zone
from hub.area_codes import AreaLevel, check_area_code
from hub.text import PlainText, refuse_bidi

AreaCode = Annotated[
    str,
    AfterValidator(check_area_code),
    Field(
        json_schema_extra={"pattern": r"^(\d{4}|\d{6}|\d{9}|\d{12})$"},
        description="GB/T 2260 code: 4 (city), 6 (district), 9 (street) or 12 digits",
    ),
]
Identifier = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Label = Annotated[PlainText, Field(min_length=1, max_length=200)]
Latitude = Annotated[float, Field(ge=-90, le=90)]
Longitude = Annotated[float, Field(ge=-180, le=180)]
TagKey = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]


def _tag_value(value: object) -> str | int | float | bool:
    if isinstance(value, str):
        if len(value) > 256:
            raise ValueError("tag values are at most 256 characters")
        return refuse_bidi(value)
    if isinstance(value, int | float | bool):
        return value
    raise ValueError("a tag value must be a string, number or boolean")


TagValue = Annotated[
    str | int | float | bool,
    PlainValidator(_tag_value),
    WithJsonSchema({"type": ["string", "number", "boolean"]}),
]
Category = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]


class DeviceType(StrEnum):
    SMOKE_SENSOR = "smoke_sensor"
    ID_READER = "id_reader"
    CAMERA = "camera"
    GB28181 = "gb28181"  # a GB/T 28181 camera, NVR, DVR or platform; its id is its GB id


class UnitKind(StrEnum):
    GRID_WORKER = "grid_worker"
    POLICE = "police"
    FIRE = "fire"
    PROPERTY = "property"
    MEDICAL = "medical"
    EMERGENCY_UNIT = "emergency_unit"
    DEPARTMENT = "department"  # a district department a whistle summons (吹哨报到)


class Strict(BaseModel):
    """Edge models reject unknown fields so a typo is an error, not silently dropped data."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class _Located(Strict):
    # lat and lon go together, said in the schema too (JSON Schema's dependentRequired).
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={"dependentRequired": {"lat": ["lon"], "lon": ["lat"]}},
    )

    lat: Latitude | None = None
    lon: Longitude | None = None

    @model_validator(mode="after")
    def _both_or_neither(self) -> _Located:
        if (self.lat is None) != (self.lon is None):
            raise ValueError("lat and lon go together: give both or neither")
        return self


# --- areas -------------------------------------------------------------------------------


class AreaIn(Strict):
    code: AreaCode
    name: Label


class AreaUpdate(Strict):
    name: Label


class Area(BaseModel):
    code: str
    name: str
    parent_code: str | None
    level: AreaLevel
    created_at: datetime


# --- devices -------------------------------------------------------------------------------


class DevicePlacement(_Located):
    site: Label | None = None
    building: Label | None = None
    floor: Annotated[PlainText, Field(max_length=32)] | None = None
    tags: Annotated[dict[TagKey, TagValue], Field(max_length=32)] = Field(default_factory=dict)


class DeviceIn(DevicePlacement):
    id: Identifier
    type: DeviceType
    area: AreaCode

    @model_validator(mode="after")
    def _gb_id(self) -> DeviceIn:
        if self.type is DeviceType.GB28181:
            check_gb_id(self.id)
        return self


class DeviceUpdate(_Located):
    area: AreaCode | None = None
    site: Label | None = None
    building: Label | None = None
    floor: Annotated[PlainText, Field(max_length=32)] | None = None
    tags: Annotated[dict[TagKey, TagValue], Field(max_length=32)] | None = None
    enabled: bool | None = None


class Credentials(BaseModel):
    username: str
    password: str


class Device(BaseModel):
    id: str
    type: DeviceType
    area: str
    site: str | None
    building: str | None
    floor: str | None
    lat: float | None
    lon: float | None
    tags: dict[str, Any]
    enabled: bool
    credentials_rotated_at: datetime
    created_at: datetime
    updated_at: datetime
    gb_channel_id: str | None = Field(
        default=None,
        title="GB/T 28181 channel id",
        description="the stable 20-digit id upper platforms see this device by (cascade)",
    )


class DeviceWithCredentials(Device):
    credentials: Credentials


# --- cameras -------------------------------------------------------------------------------


StreamUrl = Annotated[str, Field(min_length=1, max_length=2048)]
DETECT_URL = (
    "the substream the analytics read (e.g. the camera's 640x360 channel); default stream_url"
)


class CameraIn(DevicePlacement):
    id: Identifier
    area: AreaCode
    stream_url: StreamUrl
    detect_url: StreamUrl | None = Field(default=None, description=DETECT_URL)
    fps: Annotated[float, Field(gt=0, le=30)] = 2.0
    zones: Annotated[list[Zone], Field(max_length=64)] = Field(default_factory=list)
    settings: CameraSettings = Field(default_factory=CameraSettings)

    @model_validator(mode="after")
    def _unique_zone_names(self) -> CameraIn:
        check_unique_zone_names(self.zones)
        return self


class CameraUpdate(_Located):
    site: Label | None = None
    building: Label | None = None
    floor: Annotated[PlainText, Field(max_length=32)] | None = None
    stream_url: StreamUrl | None = None
    detect_url: StreamUrl | None = Field(default=None, description=f"{DETECT_URL}; null clears it")
    fps: Annotated[float, Field(gt=0, le=30)] | None = None
    enabled: bool | None = None
    settings: CameraSettings | None = Field(default=None, description="replaced as a whole")


class ZonesIn(Strict):
    zones: Annotated[list[Zone], Field(max_length=64)]

    @model_validator(mode="after")
    def _unique_zone_names(self) -> ZonesIn:
        check_unique_zone_names(self.zones)
        return self


class Camera(Device):
    stream_url: str
    detect_url: str | None = None
    fps: float
    zones: list[Zone]
    settings: CameraSettings = Field(default_factory=CameraSettings)


class CameraWithCredentials(Camera):
    credentials: Credentials


def check_unique_zone_names(zones: list[Zone]) -> None:
    seen: set[str] = set()
    for zone in zones:
        if zone.name in seen:
            raise ValueError(f"zone name {zone.name!r} is used twice")
        seen.add(zone.name)


# --- response units -------------------------------------------------------------------------


class UnitContacts(Strict):
    """How a dispatched unit is told: notification channels (its group's robot, a mailbox)
    and whom their messages call out."""

    channels: Annotated[list[Identifier], Field(max_length=16, title="channel ids")] = []
    mobiles: Annotated[
        list[Annotated[str, Field(pattern=r"^\+?\d{5,15}$")]], Field(max_length=20)
    ] = []
    wecom_users: Annotated[
        list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")]], Field(max_length=20)
    ] = Field(default=[], title="企业微信 user ids")


class UnitIn(_Located):
    id: Identifier
    name: Label
    kind: UnitKind
    area: AreaCode
    categories: Annotated[list[Category], Field(max_length=32)] = Field(default_factory=list)
    on_duty: bool = True
    contacts: UnitContacts = UnitContacts()
    parent_id: Identifier | None = Field(
        default=None, title="the organisation above it (a unit), told when it is late (督办)"
    )


class UnitUpdate(_Located):
    name: Label | None = None
    area: AreaCode | None = None
    categories: Annotated[list[Category], Field(max_length=32)] | None = None
    on_duty: bool | None = None
    contacts: UnitContacts | None = None
    parent_id: Identifier | None = Field(default=None, title="the organisation above it")


class Unit(BaseModel):
    id: str
    name: str
    kind: UnitKind
    area: str
    lat: float | None
    lon: float | None
    categories: list[str]
    on_duty: bool
    contacts: UnitContacts
    parent_id: str | None = None
    created_at: datetime
    updated_at: datetime
