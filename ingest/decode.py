"""One MQTT message in, either an accepted uplink (readings, signals, state) or a rejection."""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ValidationError

from devices.area_codes import check_area_code
from devices.commands import CommandResult
from devices.registry import DeviceRef
from hub.contracts import CAMERA_EVENT_SIGNALS, CAMERA_EVENT_TYPES, SMOKE_EVENT_SIGNALS, Signal
from ingest import idcard
from ingest.payloads import (
    SCHEMAS,
    CameraEvent,
    CameraTelemetry,
    CmdResultEvent,
    IdReadEvent,
    ReaderTelemetry,
    SmokeEvent,
    SmokeTelemetry,
    Status,
    Uplink,
)

MAX_PAYLOAD = 64 * 1024
CHANNELS = ("telemetry", "event", "status")
_DEVICE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

# Event types by the device type that sends them, to tell a type mismatch from a typo.
_EVENT_TYPES = {
    "smoke_sensor": set(SMOKE_EVENT_SIGNALS),
    "id_reader": {"id_read"},
    "camera": set(CAMERA_EVENT_TYPES),
}


_ANSWERING = frozenset({"smoke_sensor", "id_reader"})  # the types that take commands

# pydantic's words for the two mistakes devices make most with `ts`, in the contract's terms.
_TS_PROBLEMS = {
    "timezone_aware": "needs a UTC offset (e.g. +08:00 or Z)",
    "datetime_type": "is RFC 3339 text or epoch milliseconds",
}


class Reason(StrEnum):
    BAD_JSON = "bad_json"
    NOT_OBJECT = "not_object"
    TOO_LARGE = "too_large"
    BAD_TOPIC = "bad_topic"
    UNKNOWN_DEVICE = "unknown_device"
    DISABLED_DEVICE = "disabled_device"
    AREA_MISMATCH = "area_mismatch"
    TYPE_MISMATCH = "type_mismatch"
    SCHEMA = "schema"
    DUPLICATE = "duplicate"
    BAD_TIMESTAMP = "bad_timestamp"
    BAD_ID_NUMBER = "bad_id_number"


@dataclass(slots=True)
class Message:
    """An uplink as it arrived: from MQTT (with its packet id) or from an HTTP push."""

    topic: str
    payload: bytes
    received_at: datetime
    mid: int = 0
    qos: int = 1
    generation: int = 0
    retained: bool = False  # a retained message the broker replayed on subscribing


@dataclass(slots=True)
class Rejection:
    reason: Reason
    detail: str
    # The registered device it came from, when known (dead letters keep bytes only then).
    device_id: str | None = None
    device_type: str | None = None
    # Whose it is to see: the device's registered area, else the area its topic claims.
    area: str | None = None


@dataclass(slots=True)
class IdRead:
    id_hash: str
    id_masked: str
    name_masked: str | None
    sex: str | None
    nation: str | None
    valid_to: date | None
    status: str
    operator: str | None
    lat: float | None
    lon: float | None
    verdict: str | None = None  # what the reader is told (ingest.verdicts)
    verdict_level: str | None = None
    verdict_message: str | None = None


@dataclass(slots=True)
class Accepted:
    message: Message
    device: DeviceRef
    channel: str
    seq: int | None
    ts: datetime
    readings: list[tuple[datetime, str, str, float]] = field(default_factory=list)
    signals: list[Signal] = field(default_factory=list)
    online: bool | None = None
    fw: str | None = None
    battery_pct: float | None = None
    rssi_dbm: float | None = None
    id_read: IdRead | None = None
    # A retained status the broker replayed: old news, not a sign of life (device_state).
    replayed: bool = False
    cmd_result: CommandResult | None = None


@dataclass(frozen=True)
class DecodeContext:
    """What decoding needs besides the message: the registry view, the key, the clock rules."""

    devices: dict[str, DeviceRef]
    secret: bytes
    max_future: timedelta = timedelta(minutes=5)
    max_age: timedelta = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class Topic:
    area: str
    device_id: str
    channel: str


@functools.lru_cache(maxsize=65_536)
def parse_topic(topic: str) -> Topic | Rejection:
    """Split and check `sb/{area}/{device_id}/{channel}`; memoised, as devices repeat topics."""
    parts = topic.split("/")
    if len(parts) != 4 or parts[0] != "sb":
        return Rejection(Reason.BAD_TOPIC, "topic is not sb/{area}/{device_id}/{channel}")
    _, area, device_id, channel = parts
    try:
        check_area_code(area)
    except ValueError as exc:
        return Rejection(Reason.BAD_TOPIC, f"area: {exc}")
    if not _DEVICE_ID.match(device_id):
        return Rejection(Reason.BAD_TOPIC, "device_id is not [A-Za-z0-9_-]{1,64}", area=area)
    if channel not in (*CHANNELS, "cmd"):
        return Rejection(Reason.BAD_TOPIC, f"unknown channel {channel!r}", area=area)
    return Topic(area, device_id, channel)


def decode(message: Message, topic: Topic, ctx: DecodeContext) -> Accepted | Rejection:
    """Check a message against the registry and its schema and turn it into rows and signals."""
    device = ctx.devices.get(topic.device_id)
    if device is None:
        return Rejection(
            Reason.UNKNOWN_DEVICE,
            f"device {topic.device_id} is not registered",
            device_id=topic.device_id,
            area=topic.area,
        )
    outcome = _decode_for(message, topic, device, ctx)
    if isinstance(outcome, Rejection):
        outcome.device_id, outcome.device_type, outcome.area = device.id, device.type, device.area
    return outcome


def _decode_for(
    message: Message, topic: Topic, device: DeviceRef, ctx: DecodeContext
) -> Accepted | Rejection:
    if not device.enabled:
        return Rejection(Reason.DISABLED_DEVICE, f"device {device.id} is disabled")
    if device.area != topic.area:
        return Rejection(
            Reason.AREA_MISMATCH, f"topic area {topic.area} but device is in {device.area}"
        )
    if len(message.payload) > MAX_PAYLOAD:
        return Rejection(Reason.TOO_LARGE, f"{len(message.payload)} bytes > {MAX_PAYLOAD}")
    model = _schema(device.type, topic.channel, message.payload)
    try:
        # The model's validator itself: `model_validate_json` adds a quarter to its cost here.
        payload = model.__pydantic_validator__.validate_json(message.payload)
    except ValidationError as exc:
        return _schema_rejection(exc, message.payload, device.type, topic.channel)
    if isinstance(payload, Status):
        return Accepted(
            message,
            device,
            topic.channel,
            None,
            message.received_at,
            online=payload.online,
            fw=payload.fw,
            replayed=message.retained,
        )
    assert isinstance(payload, Uplink)
    ts = payload.ts.astimezone(UTC)
    if ts > message.received_at + ctx.max_future:
        return Rejection(Reason.BAD_TIMESTAMP, f"ts {ts.isoformat()} is in the future")
    if ts < message.received_at - ctx.max_age:
        return Rejection(Reason.BAD_TIMESTAMP, f"ts {ts.isoformat()} is too old")
    accepted = Accepted(message, device, topic.channel, payload.seq, ts, online=True)
    return _interpret(accepted, payload, ctx)


def _schema(device_type: str, channel: str, payload: bytes) -> type[Uplink] | type[Status]:
    # A command's answer is an event of every device type that takes commands; the byte
    # search keeps the JSON parse off every other event.
    if (
        channel == "event"
        and device_type in _ANSWERING
        and b"cmd_result" in payload
        and _event_type(payload) == "cmd_result"
    ):
        return CmdResultEvent
    return SCHEMAS[(device_type, channel)]


def _interpret(acc: Accepted, payload: BaseModel, ctx: DecodeContext) -> Accepted | Rejection:
    match payload:
        case SmokeTelemetry():
            _read(acc, payload, ("smoke", "temp_c", "battery_pct", "battery_v", "rssi_dbm"))
        case ReaderTelemetry():
            _read(acc, payload, ("battery_pct", "rssi_dbm"))
        case CameraTelemetry():
            _read(acc, payload, ("fps", "process_fps", "skipped_fps"))
        case SmokeEvent():
            value = payload.smoke
            attrs = {"event": payload.type, "temp_c": payload.temp_c, "seq": payload.seq}
            acc.signals.append(signal_of(acc, SMOKE_EVENT_SIGNALS[payload.type], value, attrs))
        case CameraEvent():
            kind = CAMERA_EVENT_SIGNALS.get(payload.type, payload.type)
            attrs = payload.model_dump(
                include={"zone", "track_id", "count", "bbox", "evidence", "direction", "reason"},
                exclude_none=True,
            )
            value = float(payload.count) if payload.count is not None else None
            acc.signals.append(signal_of(acc, kind, value, attrs, confidence=payload.confidence))
        case IdReadEvent():
            return _id_read(acc, payload, ctx)
        case CmdResultEvent():
            acc.cmd_result = CommandResult(
                acc.device.id,
                payload.cmd_id,
                payload.ok,
                payload.detail,
                at=acc.message.received_at,
            )
    return acc


def _read(acc: Accepted, payload: BaseModel, metrics: tuple[str, ...]) -> None:
    # Every telemetry message passes here: read the model's field dict once.
    fields = payload.__dict__
    ts, device_id = acc.ts, acc.device.id
    acc.readings = [
        (ts, device_id, metric, float(fields[metric]))
        for metric in metrics
        if fields[metric] is not None
    ]
    acc.battery_pct = fields.get("battery_pct")
    acc.rssi_dbm = fields.get("rssi_dbm")


def _id_read(acc: Accepted, event: IdReadEvent, ctx: DecodeContext) -> Accepted | Rejection:
    try:
        number = idcard.normalise(event.card.id_number)
    except idcard.NotAnIdNumber as exc:
        return Rejection(Reason.BAD_ID_NUMBER, f"card.id_number: {exc}")
    try:
        valid_to = idcard.parse_card_date(event.card.valid_to)
    except ValueError as exc:
        return Rejection(Reason.SCHEMA, f"card.valid_to: {exc}")
    hashed = idcard.id_hash(ctx.secret, number)
    masked = idcard.mask_id(number)
    problems = idcard.problems(number, today=acc.ts.date())
    expired = valid_to is not None and valid_to < acc.ts.date()
    status = "invalid" if problems else "expired" if expired else "ok"
    acc.id_read = IdRead(
        id_hash=hashed,
        id_masked=masked,
        name_masked=idcard.mask_name(event.card.name) if event.card.name else None,
        sex=event.card.sex,
        nation=event.card.nation,
        valid_to=valid_to,
        status=status,
        operator=event.operator,
        lat=event.lat,
        lon=event.lon,
    )
    base = {"id_hash": hashed, "id_masked": masked, "operator": event.operator}
    if problems:
        acc.signals.append(
            signal_of(acc, "id_invalid", None, {**base, "problems": [p.value for p in problems]})
        )
    elif expired:
        assert valid_to is not None
        acc.signals.append(
            signal_of(acc, "id_expired", None, {**base, "valid_to": valid_to.isoformat()})
        )
    return acc


def signal_of(
    acc: Accepted,
    kind: str,
    value: float | None = None,
    attrs: dict[str, Any] | None = None,
    *,
    confidence: float = 1.0,
) -> Signal:
    """A signal about the device that sent `acc`, at its event time; None attrs are dropped."""
    device = acc.device
    return Signal(
        ts=acc.ts,
        kind=kind,
        source_id=device.id,
        source_type=device.type,
        area=device.area,
        site=device.site,
        building=device.building,
        floor=device.floor,
        value=value,
        confidence=confidence,
        attrs={k: v for k, v in (attrs or {}).items() if v is not None},
        tags=device.tags,
    )


def _schema_rejection(
    exc: ValidationError, payload: bytes, device_type: str, channel: str
) -> Rejection:
    first = exc.errors()[0]
    kind = first["type"]
    loc = ".".join(str(p) for p in first["loc"])
    first["msg"] = str(first["msg"]).removeprefix("Value error, ")
    if kind == "json_invalid":
        return Rejection(Reason.BAD_JSON, f"not JSON: {first['msg']}")
    if kind in ("model_type", "model_attributes_type") and not first["loc"]:
        return Rejection(Reason.NOT_OBJECT, "payload is not a JSON object")
    if first["loc"] and first["loc"][0] == "ts":
        return Rejection(Reason.BAD_TIMESTAMP, f"ts: {_TS_PROBLEMS.get(kind, first['msg'])}")
    if channel == "event" and first["loc"] == ("type",):
        sent = _event_type(payload)
        owners = [t for t, types in _EVENT_TYPES.items() if sent in types and t != device_type]
        if owners:
            return Rejection(
                Reason.TYPE_MISMATCH,
                f"event type {sent!r} belongs to a {owners[0]}, but this device is a {device_type}",
            )
    return Rejection(Reason.SCHEMA, f"{loc or 'payload'}: {first['msg']}")


def _event_type(payload: bytes) -> str | None:
    try:
        value = json.loads(payload).get("type")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None
