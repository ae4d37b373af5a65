"""Uplink payloads per device type and channel (design §2), validated straight from JSON bytes."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, StrictBool

from hub.contracts import CameraEventType, SmokeEventType
from idcard.reads import Card

MAX_SEQ = 2**63 - 1


Seq = Annotated[int, Field(ge=0, le=MAX_SEQ, strict=True)]
# Numbers are JSON numbers: pydantic's lax mode would read `true` as 1 and "0.5" as 0.5, and a
# battery that says `true` is no battery at 1 %. Strict floats take JSON integers too.
Unit = Annotated[float, Field(ge=0.0, le=1.0, strict=True)]


def reading(low: float, high: float) -> object:
    """A JSON number in [low, high]."""
    return Field(ge=low, le=high, strict=True)


def _ts_shape(value: object) -> object:
    # pydantic reads any numeric string as an epoch (`"1700000000.5"`, `" 17e11"`); the
    # contract has whole milliseconds in digits only. Other text is pydantic's to judge.
    if type(value) is str and value[4:5] != "-" and not (value.isascii() and value.isdigit()):
        try:
            float(value)
        except ValueError:
            return value
        raise ValueError("is RFC 3339 text or epoch milliseconds (whole, in digits)")
    return value


Timestamp = Annotated[AwareDatetime, BeforeValidator(_ts_shape)]


class Uplink(BaseModel):
    # Unknown fields are ignored: firmware adds fields, and dropping a reading for that would
    # lose data. Known fields are checked strictly. `ts` is RFC 3339 with an offset or epoch
    # milliseconds, read by pydantic's own parser: a Python validator cost every message about
    # as much again as the rest of its validation.
    # Infinity and NaN (and 1e309, which JSON parsers read as infinity) are no reading.
    model_config = ConfigDict(
        extra="ignore", frozen=True, val_temporal_unit="milliseconds", allow_inf_nan=False
    )

    seq: Seq
    ts: Timestamp


class SmokeTelemetry(Uplink):
    smoke: Annotated[float, reading(0, 100)] | None = None
    temp_c: Annotated[float, reading(-60, 200)] | None = None
    battery_pct: Annotated[float, reading(0, 100)] | None = None
    battery_v: Annotated[float, reading(0, 20)] | None = None
    rssi_dbm: Annotated[float, reading(-160, 0)] | None = None


class SmokeEvent(Uplink):
    type: SmokeEventType
    smoke: Annotated[float, reading(0, 100)] | None = None
    temp_c: Annotated[float, reading(-60, 200)] | None = None


class ReaderTelemetry(Uplink):
    battery_pct: Annotated[float, reading(0, 100)] | None = None
    rssi_dbm: Annotated[float, reading(-160, 0)] | None = None
    lat: Annotated[float, reading(-90, 90)] | None = None
    lon: Annotated[float, reading(-180, 180)] | None = None


class IdReadEvent(Uplink):
    type: Literal["id_read"]
    operator: Annotated[str, Field(max_length=64)] | None = None
    lat: Annotated[float, reading(-90, 90)] | None = None
    lon: Annotated[float, reading(-180, 180)] | None = None
    card: Card


class CmdResultEvent(Uplink):
    """A device's answer to a command from the hub (any device type that takes commands)."""

    type: Literal["cmd_result"]
    cmd_id: Annotated[str, Field(pattern=r"^cmd_[0-9a-f]{24}$")]
    ok: StrictBool
    detail: Annotated[str, Field(max_length=500)] | None = None


class CameraEvent(Uplink):
    type: CameraEventType
    confidence: Unit = 1.0
    zone: Annotated[str, Field(max_length=64)] | None = None
    track_id: Annotated[int, Field(strict=True)] | None = None
    count: Annotated[int, Field(ge=0, strict=True)] | None = None
    bbox: tuple[Unit, Unit, Unit, Unit] | None = None
    evidence: Annotated[str, Field(max_length=128)] | None = None
    direction: Annotated[str, Field(max_length=16)] | None = None
    reason: Annotated[str, Field(max_length=64)] | None = None  # tamper or stream_lost: why


class CameraTelemetry(Uplink):
    fps: Annotated[float, Field(ge=0, strict=True)] | None = None
    process_fps: Annotated[float, Field(ge=0, strict=True)] | None = None
    skipped_fps: Annotated[float, Field(ge=0, strict=True)] | None = None


class Status(BaseModel):
    """Retained `status`: `{"online": true, "fw": "1.4.2"}`; a last will says online false."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    online: StrictBool  # true or false: not "yes", not 1
    fw: Annotated[str, Field(max_length=64)] | None = None


# (device type, channel) → the model its payload must match.
SCHEMAS: dict[tuple[str, str], type[Uplink] | type[Status]] = {
    ("smoke_sensor", "telemetry"): SmokeTelemetry,
    ("smoke_sensor", "event"): SmokeEvent,
    ("id_reader", "telemetry"): ReaderTelemetry,
    ("id_reader", "event"): IdReadEvent,
    ("camera", "telemetry"): CameraTelemetry,
    ("camera", "event"): CameraEvent,
    ("smoke_sensor", "status"): Status,
    ("id_reader", "status"): Status,
    ("camera", "status"): Status,
}
