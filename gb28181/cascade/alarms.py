"""Incidents and chosen signals as GB/T 28181 alarms for upper platforms: the reverse of the
access kind table.

The alarm names the channel that raised it (the camera, or the alarm input of the sensor) as
DeviceID, its priority (emergency 1, major 2, routine 3), AlarmMethod and AlarmType by the
reverse of `gb28181.alarms.ALARM_KINDS` (an alarm that came from a GB device keeps the method
and type it came with), the time in the upper's local time, and a Chinese description. A signal
sent up on its own has no incident priority: the GB priority it came with (`attrs.priority`,
1-4), else 4.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

from gb28181.registrar import gb_date

PRIORITY = {"emergency": "1", "major": "2", "routine": "3"}
# signal kind → (AlarmMethod, AlarmType); None: no AlarmType (an alarm input's alarm).
REVERSE_KINDS: dict[str, tuple[str, str | None]] = {
    "motion": ("5", "2"),
    "object_left": ("5", "3"),
    "object_removed": ("5", "4"),
    "line_crossing": ("5", "5"),
    "intrusion": ("5", "6"),
    "loitering": ("5", "8"),
    "crowd": ("5", "10"),
    "camera_tamper": ("5", "13"),
    "tamper": ("2", "2"),
    "video_loss": ("2", "1"),
    "smoke_alarm": ("2", None),
    "device_alarm": ("2", None),
    "device_fault": ("6", None),
}
# Vision kinds the table has no type for: video alarms (method 5) without a type.
VIDEO_KINDS = frozenset(
    {"camera_fire", "camera_smoke", "fall", "fire_lane_blocked", "ebike_in_elevator"}
)
KIND_NAMES = {
    "smoke_alarm": "烟感报警",
    "camera_fire": "视频火焰报警",
    "camera_smoke": "视频烟雾报警",
    "intrusion": "区域入侵",
    "line_crossing": "越界",
    "loitering": "徘徊",
    "crowd": "人员聚集",
    "motion": "移动侦测",
    "object_left": "物品遗留",
    "object_removed": "物品拿取",
    "tamper": "防破坏报警",
    "camera_tamper": "视频遮挡",
    "video_loss": "视频丢失",
    "device_fault": "设备故障",
    "device_alarm": "报警输入",
    "fall": "人员倒地",
    "fire_lane_blocked": "消防通道占用",
    "ebike_in_elevator": "电动车进电梯",
    "device_offline": "设备离线",
    "battery_low": "电量低",
    "id_watchlist_hit": "布控人员",
}


def method_and_type(kind: str, attrs: dict[str, Any]) -> tuple[str, str | None]:
    """What the upper is told of the alarm's kind."""
    method = attrs.get("alarm_method")
    if isinstance(method, str) and method.isdigit() and len(method) == 1:
        alarm_type = attrs.get("alarm_type")
        return method, str(alarm_type) if alarm_type else None
    if kind in REVERSE_KINDS:
        return REVERSE_KINDS[kind]
    if kind in VIDEO_KINDS:
        return "5", None
    return "7", None  # other


def signal_priority(attrs: dict[str, Any]) -> str:
    """AlarmPriority of a signal sent up on its own."""
    given = attrs.get("priority")
    return str(given) if isinstance(given, int) and 1 <= given <= 4 else "4"


@dataclass(frozen=True, slots=True)
class Forwarded:
    """One incident or signal as the upper will see it; `priority` is AlarmPriority (1-4)."""

    channel_id: str
    priority: str
    kind: str
    attrs: dict[str, Any]
    title: str | None
    site: str | None
    building: str | None
    created_at: datetime
    lat: float | None
    lon: float | None

    def description(self) -> str:
        given = self.attrs.get("description")
        label = KIND_NAMES.get(self.kind, "报警")
        where = " ".join(p for p in (self.site, self.building) if p)
        text = f"{label}：{where}" if where else label
        if given and self.kind == "device_alarm":
            text = f"{given}（{where}）" if where else str(given)
        return (f"{text}；{self.title}" if self.title else text)[:200]

    def body(self, sn: int, tz: ZoneInfo, skew: timedelta) -> bytes:
        method, alarm_type = method_and_type(self.kind, self.attrs)
        parts = [
            "<CmdType>Alarm</CmdType>",
            f"<SN>{sn}</SN>",
            f"<DeviceID>{self.channel_id}</DeviceID>",
            f"<AlarmPriority>{self.priority}</AlarmPriority>",
            f"<AlarmMethod>{method}</AlarmMethod>",
            f"<AlarmTime>{gb_date(self.created_at + skew, tz)[:19]}</AlarmTime>",
            f"<AlarmDescription>{escape(self.description())}</AlarmDescription>",
        ]
        if self.lon is not None and self.lat is not None:
            parts += [
                f"<Longitude>{self.lon:.6f}</Longitude>",
                f"<Latitude>{self.lat:.6f}</Latitude>",
            ]
        if alarm_type is not None:
            parts.append(f"<Info>\r\n<AlarmType>{escape(alarm_type)}</AlarmType>\r\n</Info>")
        text = (
            '<?xml version="1.0" encoding="GB2312"?>\r\n<Notify>\r\n'
            + "\r\n".join(parts)
            + "\r\n</Notify>\r\n"
        )
        return text.encode("gb18030")
