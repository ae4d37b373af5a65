"""Uplinks as data: `/api/v1/gb/uplinks` documents. The password is write-only."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from hub.area_codes import check_area_prefix

Identifier = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
GbId = Annotated[str, Field(pattern=r"^[0-9]{20}$")]
Priority = Literal["emergency", "major", "routine"]
Kind = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,47}$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Forward(Strict):
    """Which incidents and signals go up. The incident filters (priority, category, kind):
    each list empty = all. `signal_kind`: the kinds of signal sent up on their own, as they
    arrive, whether or not they open an incident (empty: none)."""

    priority: Annotated[list[Priority], Field(max_length=3)] = Field(
        default_factory=list, title="incident priorities sent up (empty: all)"
    )
    category: Annotated[list[Kind], Field(max_length=32)] = Field(
        default_factory=list, title="incident categories sent up (empty: all)"
    )
    kind: Annotated[list[Kind], Field(max_length=64)] = Field(
        default_factory=list, title="kinds of the incident's first signal sent up (empty: all)"
    )
    signal_kind: Annotated[list[Kind], Field(max_length=64)] = Field(
        default_factory=list, title="kinds of signal sent up on their own (empty: none)"
    )


class UplinkIn(Strict):
    id: Identifier
    name: Annotated[str, Field(min_length=1, max_length=100)] = Field(title="upper platform")
    upper_id: GbId = Field(title="the upper platform's 20-digit id")
    upper_domain: Annotated[str, Field(pattern=r"^[0-9A-Za-z.-]{1,64}$")] = Field(
        title="the upper platform's SIP domain (realm), usually its id's first 10 digits"
    )
    host: Annotated[str, Field(pattern=r"^[0-9A-Za-z.:-]{1,253}$")] = Field(
        title="where the upper platform listens"
    )
    port: Annotated[int, Field(ge=1, le=65535)] = 5060
    transport: Literal["udp", "tcp"] = "udp"
    password: Annotated[SecretStr, Field(min_length=1, max_length=32)] | None = Field(
        default=None, title="the password the upper platform gave us; write-only"
    )
    local_id: GbId = Field(title="our own 20-digit id toward this upper platform (type 200)")
    area_prefix: Annotated[str, Field(max_length=12)] = Field(
        title="the area whose cameras and alarm inputs the upper platform sees"
    )
    forward: Forward = Forward()
    keepalive_s: Annotated[int, Field(ge=1, le=3600)] = Field(
        default=60, title="keepalive interval, seconds"
    )
    expires_s: Annotated[int, Field(ge=60, le=86_400)] = Field(
        default=3600, title="registration expiry asked for, seconds"
    )
    enabled: bool = True

    @field_validator("area_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        return check_area_prefix(value)


class UplinkStatus(BaseModel):
    registered: bool = False
    last_error: str | None = None
    registered_at: datetime | None = None
    last_keepalive: datetime | None = Field(default=None, title="last keepalive answered")
    clock_skew_ms: int | None = Field(
        default=None, title="the upper's Date minus ours at its last 200 to REGISTER"
    )
    forwarded: int = 0
    failed: int = 0
    pending: int = 0


class Uplink(BaseModel):
    id: str
    name: str
    upper_id: str
    upper_domain: str
    host: str
    port: int
    transport: Literal["udp", "tcp"]
    local_id: str
    area_prefix: str
    forward: Forward
    keepalive_s: int
    expires_s: int
    enabled: bool
    created_at: datetime
    updated_at: datetime
    status: UplinkStatus = UplinkStatus()
