"""The rule document (design §4), validated so that every error names its field."""

from __future__ import annotations

import string
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    model_validator,
)

from hub.contracts import KINDS, Priority, Schedule
from hub.durations import MAX, within
from hub.text import PlainText

# A condition is at most this many `any`/`all` levels deep, with this many matches in all:
# every signal is checked against every enabled rule.
MAX_CONDITION_DEPTH = 4
MAX_CONDITION_MATCHES = 64


def _kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown signal kind {kind!r}; known: {', '.join(sorted(KINDS))}")
    return kind


# Every duration a rule carries, bounded (hub.durations reads them all): a window needs some
# width, a wait or a cooldown may be none.
Window = Annotated[str, within(timedelta(seconds=1), MAX), Field(description="1s to 30d")]
Wait = Annotated[str, within(timedelta(0), MAX), Field(description="0s to 30d")]
Kind = Annotated[str, AfterValidator(_kind)]
Kinds = Annotated[list[Kind], Field(min_length=1, max_length=32)]
GroupField = Literal["area", "site", "building", "source_id", "source_type", "zone"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ValueRange(Strict):
    gte: float | None = None
    lte: float | None = None


class Where(Strict):
    """Which signals a match takes. `tags` are the source device's registry tags (as they
    were when the signal was raised): `{"vendor": "acme"}`."""

    area_prefix: Annotated[str, Field(pattern=r"^\d{0,12}$")] = ""
    min_confidence: Annotated[float, Field(ge=0, le=1)] = 0.0
    source_type: Literal["smoke_sensor", "id_reader", "camera"] | None = None
    value: ValueRange | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    zone: Annotated[PlainText, Field(max_length=64)] | None = None


class Match(Strict):
    """Signals of these kinds that pass `where`."""

    kind: Kinds
    where: Where = Where()


class AnyOf(Strict):
    any: Annotated[list[Condition], Field(min_length=1, max_length=16)]


class AllOf(Strict):
    all: Annotated[list[Condition], Field(min_length=1, max_length=16)]


def _condition_kind(value: object) -> str:
    """Which shape a condition has, from its keys, so errors speak of that shape only (a
    value that is no object at all is judged as a match, which says what it lacks)."""
    if isinstance(value, dict):
        keys = set(value)
    elif isinstance(value, BaseModel):
        keys = set(type(value).model_fields)
    else:
        return "match"
    return "any" if "any" in keys else "all" if "all" in keys else "match"


Condition = Annotated[
    Annotated[Match, Tag("match")] | Annotated[AnyOf, Tag("any")] | Annotated[AllOf, Tag("all")],
    Discriminator(_condition_kind),
]


class Threshold(Strict):
    count: Annotated[int, Field(ge=1, le=100_000)] = 1
    within: Window = "60s"


class Confirm(Strict):
    """A corroborating signal nearby raises the incident's priority."""

    kind: Kinds
    within: Window
    same: Literal["site", "building", "area", "source_id"] = "building"
    priority: Priority = Priority.EMERGENCY


class Recovery(Strict):
    """A signal that says the trouble is over (a device back online), from the same group
    while the rule's incident is open: `close` closes it as resolved, `note` marks it
    recovered and leaves it to people; an audit row says which signal did it."""

    kind: Kinds
    action: Literal["close", "note"] = "close"


# `count`: the people a crowd counted, for other kinds the signals; `signals`: the signals;
# `floor`: the device's floor as people say it (3层); `kind_name`: the kind's name (烟感报警).
_PLACEHOLDERS = {
    "site",
    "building",
    "floor",
    "area",
    "source_id",
    "kind",
    "kind_name",
    "count",
    "signals",
    "zone",
    "description",
}


class IncidentSpec(Strict):
    category: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
    priority: Priority
    title: Annotated[PlainText, Field(min_length=1, max_length=200)]
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
    name: Annotated[PlainText, Field(min_length=1, max_length=200)]
    enabled: bool = True
    match: Condition
    threshold: Threshold = Threshold()
    for_: Wait = Field(default="0s", alias="for")
    group_by: Annotated[list[GroupField], Field(max_length=6)] = Field(
        default_factory=_default_group
    )
    confirm: Confirm | None = None
    recover: Recovery | None = None
    schedule: Schedule | None = None
    incident: IncidentSpec
    cooldown: Wait = "0s"

    @model_validator(mode="after")
    def _bounded(self) -> Rule:
        depth, matches = _size(self.match)
        if depth > MAX_CONDITION_DEPTH:
            raise ValueError(
                f"match nests {depth} levels of any/all; at most {MAX_CONDITION_DEPTH}"
            )
        if matches > MAX_CONDITION_MATCHES:
            raise ValueError(f"match has {matches} conditions; at most {MAX_CONDITION_MATCHES}")
        return self

    @property
    def area_prefix(self) -> str:
        """The narrowest area every matched signal must be in (for scoping who may edit)."""
        return _prefix(self.match)

    def document(self) -> dict[str, object]:
        """The rule as stored and returned: JSON with `for`, not `for_`."""
        return self.model_dump(mode="json", by_alias=True)


def _size(condition: Condition) -> tuple[int, int]:
    """(levels of any/all, matches) of a condition."""
    if isinstance(condition, Match):
        return 0, 1
    parts = [_size(c) for c in (condition.any if isinstance(condition, AnyOf) else condition.all)]
    return 1 + max(d for d, _ in parts), sum(n for _, n in parts)


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
