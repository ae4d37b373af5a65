"""GB/T 28181 alarms as signals: the one published table of kinds (docs/gb28181.md shows it).

AlarmMethod (what raised it) and AlarmType (what kind, within the method) name the signal
kind. AlarmPriority 1 (highest) to 4 becomes `attrs.priority` and the signal's confidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from gb28181.manscdp import Element

# (AlarmMethod, AlarmType) → kind; AlarmType None: the method's alarms without a type.
ALARM_KINDS: dict[tuple[str, str | None], str] = {
    ("5", "2"): "motion",
    ("5", "3"): "object_left",
    ("5", "4"): "object_removed",
    ("5", "5"): "line_crossing",
    ("5", "6"): "intrusion",
    ("5", "8"): "loitering",
    ("5", "10"): "crowd",
    ("5", "13"): "tamper",  # 2022: video occlusion
    ("2", "1"): "video_loss",
    ("2", "2"): "tamper",
    ("2", "3"): "device_fault",  # disk full
    ("2", "4"): "device_fault",  # high temperature
    ("2", "5"): "device_fault",  # low temperature
    ("2", None): "device_alarm",  # an alarm input: smoke detector, door contact
    ("6", "1"): "device_fault",  # disk
    ("6", "2"): "device_fault",  # fan
    ("6", None): "device_fault",
}
# A method's alarms of a type the table above does not name.
METHOD_KINDS = {
    "1": "device_alarm",
    "2": "device_alarm",
    "3": "device_alarm",
    "4": "device_alarm",
    "5": "device_alarm",
    "6": "device_fault",
    "7": "device_alarm",
}
PRIORITY_CONFIDENCE = {1: 1.0, 2: 0.75, 3: 0.5, 4: 0.25}


def alarm_kind(method: str | None, alarm_type: str | None) -> str | None:
    """The signal kind, or None for an alarm the table does not name (counted, not stored)."""
    if method is None:
        return None
    found = ALARM_KINDS.get((method, alarm_type))
    if found is not None:
        return found
    return METHOD_KINDS.get(method)


@dataclass(frozen=True, slots=True)
class Alarm:
    source_id: str  # the channel, or the device itself
    sn: str
    alarm_time: str  # as the device wrote it: the dedupe key
    ts: datetime
    kind: str
    confidence: float
    attrs: dict[str, Any]


def read_alarm(element: Element, device_id: str, sn: str, tz: ZoneInfo, now: datetime) -> Alarm:
    """An Alarm Notify's fields (the <Info> block of 2016 and 2022 both). A kind the table
    does not name raises ValueError."""
    info = element.find("Info")
    method = element.get("AlarmMethod")
    alarm_type = element.get("AlarmType") or (info.get("AlarmType") if info is not None else None)
    # Some devices put several methods in one ("5,2" or "52"); the first decides.
    if method and not method.isdigit():
        method = method.split(",")[0].strip()
    kind = alarm_kind(method, alarm_type)
    if kind is None:
        raise ValueError(f"AlarmMethod {method!r} AlarmType {alarm_type!r} has no kind")
    attrs: dict[str, Any] = {"gb_device": device_id, "alarm_method": method, "sn": sn}
    if alarm_type:
        attrs["alarm_type"] = alarm_type
    priority = _int(element.get("AlarmPriority"))
    confidence = 1.0
    if priority in PRIORITY_CONFIDENCE:
        attrs["priority"] = priority
        confidence = PRIORITY_CONFIDENCE[priority]
    description = element.get("AlarmDescription")
    if description:
        attrs["description"] = description[:500]
    params = info.find("AlarmTypeParam") if info is not None else None
    event_type = (params.get("EventType") if params is not None else None) or element.get(
        "EventType"
    )
    if event_type:
        attrs["event_type"] = event_type[:32]
    for key, tag in (("lon", "Longitude"), ("lat", "Latitude")):
        value = element.get(tag)
        if value:
            attrs[key] = value[:32]
    raw_time = (element.get("AlarmTime") or "")[:40]
    return Alarm(
        source_id=element.get("DeviceID") or device_id,
        sn=sn,
        alarm_time=raw_time,
        ts=_gb_time(raw_time, tz) or now,
        kind=kind,
        confidence=confidence,
        attrs=attrs,
    )


def _int(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() and len(text) < 4 else None


def _gb_time(text: str, tz: ZoneInfo) -> datetime | None:
    """GB time, `YYYY-MM-DDTHH:MM:SS[.mmm]` in the device's (the hub's) local time."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value.replace(tzinfo=tz) if value.tzinfo is None else value
