"""Catalog: a device's channels, gathered from Response (and Notify) MESSAGEs to SumNum."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from devices.gb_ids import ALARM_INPUT, is_gb_id, type_code
from devices.gb_ids import is_video_channel as _video
from gb28181.manscdp import Element

MAX_ITEMS = 4096  # an NVR has at most a few hundred channels; a platform a few thousand
_TEXT_FIELDS = (
    ("name", "Name"),
    ("manufacturer", "Manufacturer"),
    ("model", "Model"),
    ("civil_code", "CivilCode"),
    ("parent", "ParentID"),
    ("status", "Status"),
    ("address", "Address"),
    ("event", "Event"),
)


@dataclass(frozen=True, slots=True)
class Channel:
    id: str
    fields: dict[str, str]
    lat: float | None = None
    lon: float | None = None

    @property
    def is_video(self) -> bool:
        return _video(self.id)

    @property
    def is_alarm_input(self) -> bool:
        return type_code(self.id) == ALARM_INPUT

    def tags(self, device_id: str) -> dict[str, Any]:
        """What the camera's registry tags say of the channel."""
        tags: dict[str, Any] = {"gb_device": device_id}
        for key in ("name", "manufacturer", "model", "status", "civil_code", "parent"):
            if key in self.fields:
                tags[f"gb_{key}"] = self.fields[key]
        return tags


def read_items(element: Element) -> list[Channel]:
    """The channels of a Catalog Response or Notify (items with a bad id are skipped)."""
    device_list = element.find("DeviceList")
    if device_list is None:
        return []
    found = []
    for item in device_list.findall("Item")[:MAX_ITEMS]:
        channel_id = item.get("DeviceID")
        if not channel_id or not is_gb_id(channel_id):
            continue
        values = {key: item.get(tag) for key, tag in _TEXT_FIELDS}
        fields = {k: v[:200] for k, v in values.items() if v}
        lat, lon = _coord(item.get("Latitude"), 90), _coord(item.get("Longitude"), 180)
        if lat is None or lon is None or (lat == 0 and lon == 0):
            lat = lon = None  # (0, 0) is how devices say "not set"
        found.append(Channel(channel_id, fields, lat, lon))
    return found


def _coord(text: str | None, bound: float) -> float | None:
    try:
        value = float(text) if text else None
    except ValueError:
        return None
    return value if value is not None and -bound <= value <= bound else None


def sum_num(element: Element) -> int | None:
    text = element.get("SumNum")
    return int(text) if text and text.isdigit() and len(text) < 7 else None


@dataclass
class Gathering:
    """One catalog answer, spread over several MESSAGEs with the query's SN, until SumNum."""

    sn: str
    total: int | None = None
    channels: dict[str, Channel] = field(default_factory=dict)

    def add(self, element: Element) -> bool:
        """Take one MESSAGE's items; whether the catalog is now complete."""
        total = sum_num(element)
        if total is not None:
            self.total = min(total, MAX_ITEMS)
        for channel in read_items(element):
            if len(self.channels) < MAX_ITEMS:
                self.channels[channel.id] = channel
        return self.complete

    @property
    def complete(self) -> bool:
        return self.total is not None and len(self.channels) >= self.total
