"""The contract types several packages share (design §2, §3, §4): one place for each.

Ingest and vision produce signals, rules consume them, incidents carry their priority, the
API and the console show them. Kept in the kernel so that no domain package needs another one
for its vocabulary.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, time
from enum import StrEnum
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hub.times import hub_zone


class Priority(StrEnum):
    """The three whistles."""

    EMERGENCY = "emergency"  # 应急哨
    MAJOR = "major"  # 攻坚哨
    ROUTINE = "routine"  # 日常哨


PRIORITY_RANK = {Priority.ROUTINE: 0, Priority.MAJOR: 1, Priority.EMERGENCY: 2}


# --- camera events (design §2) ------------------------------------------------------------

# What a vision worker may publish on a camera's event channel.
CameraEventType = Literal[
    "intrusion",
    "loitering",
    "crowd",
    "fire",
    "smoke",
    "fall",
    "fire_lane_blocked",
    "ebike_in_elevator",
    "tamper",
    "stream_lost",
    "stream_restored",
    "line_crossing",
]
CAMERA_EVENT_TYPES: tuple[str, ...] = get_args(CameraEventType)
# Camera event types whose signal kind differs from the type.
CAMERA_EVENT_SIGNALS = {"fire": "camera_fire", "smoke": "camera_smoke", "tamper": "camera_tamper"}
# Signal kinds that come from a camera's analytics (a lost stream mutes them).
CAMERA_ANALYTICS = frozenset(
    CAMERA_EVENT_SIGNALS.get(t, t)
    for t in CAMERA_EVENT_TYPES
    if t not in ("tamper", "stream_lost", "stream_restored")
)

# --- smoke sensor events ------------------------------------------------------------------

SmokeEventType = Literal["smoke_alarm", "alarm_cleared", "tamper", "low_battery", "fault", "test"]
# What each smoke sensor event means as a signal.
SMOKE_EVENT_SIGNALS: dict[str, str] = {
    "smoke_alarm": "smoke_alarm",
    "alarm_cleared": "smoke_alarm_cleared",
    "tamper": "tamper",
    "low_battery": "battery_low",
    "fault": "device_fault",
    "test": "smoke_test",  # a test alarm is not a fire
}

# --- GB/T 28181 alarms (gb28181/alarms.py maps AlarmMethod/AlarmType to these) -------------

GB_ALARM_SIGNALS = frozenset(
    {
        "motion",
        "object_left",
        "object_removed",
        "line_crossing",
        "intrusion",
        "loitering",
        "crowd",
        "tamper",
        "video_loss",
        "device_fault",
        "device_alarm",
    }
)

# --- signals (design §3) ------------------------------------------------------------------

# Every signal kind ingest and vision raise; rules may match only these.
KINDS = frozenset(
    {
        *SMOKE_EVENT_SIGNALS.values(),
        *(CAMERA_EVENT_SIGNALS.get(t, t) for t in CAMERA_EVENT_TYPES),
        *GB_ALARM_SIGNALS,
        "device_offline",
        "device_online",
        "id_watchlist_hit",
        "id_invalid",
        "id_expired",
        "id_impossible_travel",
        "id_unregistered",
    }
)


@dataclass(frozen=True, slots=True)
class Signal:
    """Something that happened at a place, in event time (`ts`, the device's clock).

    Once stored in the signal log it has an `id` (the log's order) and `received_at` (the
    hub's clock when it was stored); `tags` are the source device's registry tags then.
    """

    ts: datetime
    kind: str
    source_id: str
    source_type: str
    area: str
    site: str | None = None
    building: str | None = None
    floor: str | None = None  # the source device's floor, as its registry says (3, B1)
    value: float | None = None
    confidence: float = 1.0
    attrs: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, Any] = field(default_factory=dict)
    id: int | None = None
    received_at: datetime | None = None

    def place(self, level: str) -> tuple[str | None, ...] | None:
        """Where this happened, at `level` (area, site, building, source_id): a tuple that
        includes the area, so that two districts' "3栋" are never the same place; None when
        the signal does not name the place at that level."""
        if level == "source_id":
            return (self.source_id,)
        if level == "area":
            return (self.area,)
        if level == "site":
            return (self.area, self.site) if self.site else None
        return (self.area, self.site, self.building) if self.building else None


# --- schedules (rules and camera zones) ---------------------------------------------------

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")


class Schedule(BaseModel):
    """When something is active: `days` like `mon-fri` or `sat,sun`; `hours` like
    `22:00-06:00` (crossing midnight is allowed); in the time zone `tz`, by default the hub's
    (SB_TIMEZONE), which the stored document then names."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    days: str = "mon-sun"
    hours: str = "00:00-24:00"
    tz: str = Field(default_factory=lambda: str(hub_zone()))

    @model_validator(mode="after")
    def _check(self) -> Schedule:
        self.weekdays()
        self.window()
        try:
            ZoneInfo(self.tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"tz {self.tz!r} is not an IANA time zone such as Asia/Shanghai"
            ) from None
        return self

    def weekdays(self) -> frozenset[int]:
        """0 = Monday."""
        found: set[int] = set()
        for part in self.days.lower().split(","):
            first, _, last = part.strip().partition("-")
            if first not in _DAYS or (last and last not in _DAYS):
                raise ValueError(f"days {self.days!r}: use mon..sun, ranges (mon-fri) and commas")
            a, b = _DAYS.index(first), _DAYS.index(last or first)
            found.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
        return frozenset(found)

    def window(self) -> tuple[time, time | None]:
        """Start and end of the daily window; end None means midnight (24:00)."""
        match = _HOURS.match(self.hours)
        if not match:
            raise ValueError(f"hours {self.hours!r}: use HH:MM-HH:MM, e.g. 22:00-06:00")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2):
            raise ValueError(f"hours {self.hours!r} is not a time of day")
        start, end = time(h1, m1), None if h2 == 24 else time(h2, m2)
        if end == start:
            raise ValueError(f"hours {self.hours!r} is an empty window")
        return start, end

    def contains(self, ts: datetime) -> bool:
        """Whether the aware instant `ts` falls inside the schedule."""
        local = ts.astimezone(ZoneInfo(self.tz))
        start, end = self.window()
        now = local.time()
        days = self.weekdays()
        if end is None or start < end:  # a window inside one day
            return local.weekday() in days and now >= start and (end is None or now < end)
        # Across midnight: the early-morning part belongs to the window that began the day before.
        if now >= start:
            return local.weekday() in days
        return now < end and (local.weekday() - 1) % 7 in days


assert set(SMOKE_EVENT_SIGNALS) == set(get_args(SmokeEventType)), "one name, one meaning"
