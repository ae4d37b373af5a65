"""The rule document (DESIGN §6), validated so that every error names its field."""

from __future__ import annotations

import re
import string
from datetime import datetime, time
from enum import StrEnum
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    model_validator,
)

from hub.signals import KINDS
from rules.durations import parse_duration


class Priority(StrEnum):
    """The three whistles."""

    EMERGENCY = "emergency"  # 应急哨
    MAJOR = "major"  # 攻坚哨
    ROUTINE = "routine"  # 日常哨


def _duration(text: str) -> str:
    parse_duration(text)
    return text


def _kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown signal kind {kind!r}; known: {', '.join(sorted(KINDS))}")
    return kind


Duration = Annotated[str, AfterValidator(_duration)]
Kind = Annotated[str, AfterValidator(_kind)]
Kinds = Annotated[list[Kind], Field(min_length=1, max_length=32)]
GroupField = Literal["area", "site", "building", "source_id", "source_type", "zone"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ValueRange(Strict):
    gte: float | None = None
    lte: float | None = None


class Where(Strict):
    area_prefix: Annotated[str, Field(pattern=r"^\d{0,12}$")] = ""
    min_confidence: Annotated[float, Field(ge=0, le=1)] = 0.0
    source_type: Literal["smoke_sensor", "id_reader", "camera"] | None = None
    value: ValueRange | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    zone: Annotated[str, Field(max_length=64)] | None = None


class Match(Strict):
    """Signals of these kinds that pass `where`."""

    kind: Kinds
    where: Where = Where()


class AnyOf(Strict):
    any: Annotated[list[Condition], Field(min_length=1, max_length=16)]


class AllOf(Strict):
    all: Annotated[list[Condition], Field(min_length=1, max_length=16)]


def _condition_kind(value: object) -> str:
    """Which shape a condition has, from its keys, so errors speak of that shape only."""
    keys = value.keys() if isinstance(value, dict) else vars(value).keys()
    return "any" if "any" in keys else "all" if "all" in keys else "match"


Condition = Annotated[
    Annotated[Match, Tag("match")] | Annotated[AnyOf, Tag("any")] | Annotated[AllOf, Tag("all")],
    Discriminator(_condition_kind),
]


class Threshold(Strict):
    count: Annotated[int, Field(ge=1, le=100_000)] = 1
    within: Duration = "60s"


class Confirm(Strict):
    """A corroborating signal nearby raises the incident's priority."""

    kind: Kinds
    within: Duration
    same: Literal["site", "building", "area", "source_id"] = "building"
    priority: Priority = Priority.EMERGENCY


_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")


class Schedule(Strict):
    """When the rule is active: `days` like `mon-fri` or `sat,sun`; `hours` like `22:00-06:00`
    (crossing midnight is allowed); in the time zone `tz`."""

    days: str = "mon-sun"
    hours: str = "00:00-24:00"
    tz: str = "Asia/Shanghai"

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


_PLACEHOLDERS = {"site", "building", "area", "source_id", "kind", "count", "zone"}


class IncidentSpec(Strict):
    category: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
    priority: Priority
    title: Annotated[str, Field(min_length=1, max_length=200)]
    dispatch: Literal["nearest", "none"] = "none"

    @model_validator(mode="after")
    def _check_title(self) -> IncidentSpec:
        try:
            names = {f for _, f, _, _ in string.Formatter().parse(self.title) if f is not None}
        except ValueError as exc:
            raise ValueError(f"title: {exc}") from None
        unknown = names - _PLACEHOLDERS
        if unknown:
            raise ValueError(
                f"title uses unknown placeholder(s) {sorted(unknown)};"
                f" known: {sorted(_PLACEHOLDERS)}"
            )
        return self


def _default_group() -> list[GroupField]:
    return ["source_id"]


class Rule(Strict):
    """A detection rule. Durations are strings (`60s`); `for_` is `for` in the document."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{1,63}$")]
    name: Annotated[str, Field(min_length=1, max_length=200)]
    enabled: bool = True
    match: Condition
    threshold: Threshold = Threshold()
    for_: Duration = Field(default="0s", alias="for")
    group_by: Annotated[list[GroupField], Field(max_length=6)] = Field(
        default_factory=_default_group
    )
    confirm: Confirm | None = None
    schedule: Schedule | None = None
    incident: IncidentSpec
    cooldown: Duration = "0s"

    @property
    def area_prefix(self) -> str:
        """The narrowest area every matched signal must be in (for scoping who may edit)."""
        return _prefix(self.match)

    def document(self) -> dict[str, object]:
        """The rule as stored and returned: JSON with `for`, not `for_`."""
        return self.model_dump(mode="json", by_alias=True)


def _prefix(condition: Condition) -> str:
    if isinstance(condition, Match):
        return condition.where.area_prefix
    parts = [_prefix(c) for c in (condition.any if isinstance(condition, AnyOf) else condition.all)]
    # A rule's reach is the widest of its branches: the common prefix of them all.
    common = parts[0]
    for part in parts[1:]:
        while not part.startswith(common):
            common = common[:-1]
    return common


AnyOf.model_rebuild()
AllOf.model_rebuild()
Rule.model_rebuild()
