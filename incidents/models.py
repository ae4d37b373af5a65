"""Incident shapes at the API edge (design §6)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hub.contracts import Priority
from hub.text import PlainText
from incidents.states import Action, CloseReason, Status

SummonStatus = Literal["summoned", "acknowledged", "reported", "overdue"]
Light = Literal["green", "yellow", "red"]
Flag = Literal["not_reported", "late", "shirking", "repeat"]  # 未报到, 超时报到, 推诿, 重复哨
YELLOW_AT = 0.8  # share of the allowed time after which the light turns yellow


class Summon(BaseModel):
    """One unit a whistle summoned to the incident, and its 报到 record."""

    unit_id: str
    lead: bool
    summoned_by: str
    summoned_level: str = Field(description="the area of the level that blew the whistle")
    summoned_at: datetime
    report_by: datetime
    acknowledged_at: datetime | None
    reported_at: datetime | None
    overdue_at: datetime | None = Field(description="when it was raised as overdue (督办)")
    status: SummonStatus
    light: Light = Field(description="green to 80 % of the allowed time, yellow to 100 %, red")
    rating: int | None = Field(description="the summoning level's rating of it, 1-5")
    rating_comment: str | None
    flags: list[Flag] = Field(description="日常哨's negative list")
    whistle_rating: int | None = Field(description="its rating of the whistle, 1-5")
    whistle_comment: str | None


class Incident(BaseModel):
    id: int
    rule_id: str | None
    rule_version: int | None
    category: str
    priority: Priority
    status: Status
    area: str
    site: str | None
    building: str | None
    title: str
    created_at: datetime
    updated_at: datetime
    accept_by: datetime
    resolve_by: datetime
    accepted_at: datetime | None
    closed_at: datetime | None
    close_reason: CloseReason | None
    unit_id: str | None
    suggested_unit_id: str | None
    lat: float | None
    lon: float | None
    signal_count: int
    first_signal_at: datetime
    last_signal_at: datetime
    evidence: list[Any]
    escalated_to: str | None
    escalations: int
    rating: int | None
    recovered_at: datetime | None = Field(
        default=None, description="when a recovery signal (a device back online) came"
    )
    source: Literal["rule", "report", "public"] = Field(
        default="rule", description="a rule, a report by staff, or a resident's report"
    )
    reported_by: str | None = Field(default=None, description="who reported it (reports)")
    floor: str | None = None
    summons: list[Summon] = Field(default_factory=list, description="吹哨报到: who was summoned")


class ActionIn(BaseModel):
    """`POST /incidents/{id}/actions`."""

    model_config = ConfigDict(extra="forbid")

    action: Action
    unit_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")] | None = None
    reason: CloseReason | None = None
    rating: Annotated[int, Field(ge=1, le=5)] | None = None
    note: Annotated[PlainText, Field(max_length=2000)] | None = None
    unit_ids: (
        Annotated[
            list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]],
            Field(min_length=1, max_length=32, title="summon: the units to summon"),
        ]
        | None
    ) = None
    lead: (
        Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", title="summon: the lead unit")]
        | None
    ) = None
    comment: (
        Annotated[PlainText, Field(max_length=2000, title="rate_unit, rate_whistle")] | None
    ) = None
    whistle: Priority | None = Field(
        default=None,
        title="summon: the whistle blown (日常哨 routine, 攻坚哨 major, 应急哨 emergency);"
        " it raises the incident's priority, never lowers it",
    )
    flags: (
        Annotated[
            list[Flag], Field(min_length=1, max_length=4, title="flag_unit: 日常哨 negative list")
        ]
        | None
    ) = None

    @model_validator(mode="after")
    def _needs(self) -> ActionIn:
        rated = (Action.RATE, Action.RATE_UNIT, Action.RATE_WHISTLE)
        if self.action in rated and self.rating is None:
            raise ValueError(f"{self.action.value} needs rating (1-5)")
        if self.action is Action.SUMMON and not self.unit_ids:
            raise ValueError("summon needs unit_ids")
        # A summon's fields on any other action would slip past the summon's checks (a lead
        # made the incident's unit, a whistle raising its priority): refused, not ignored.
        if self.action is not Action.SUMMON:
            extra = [n for n in ("unit_ids", "lead", "whistle") if getattr(self, n) is not None]
            if extra:
                raise ValueError(f"{', '.join(extra)}: for summon only")
        if self.action is not Action.FLAG_UNIT and self.flags is not None:
            raise ValueError("flags: for flag_unit only")
        if self.lead is not None and self.lead not in (self.unit_ids or []):
            raise ValueError("lead must be one of unit_ids")
        if self.action in (Action.RATE_UNIT, Action.FLAG_UNIT) and self.unit_id is None:
            raise ValueError(f"{self.action.value} needs unit_id")
        if self.action is Action.FLAG_UNIT and not self.flags:
            raise ValueError("flag_unit needs flags")
        if self.action is Action.COMMENT and not self.note:
            raise ValueError("comment needs note")
        return self


class AuditEntry(BaseModel):
    at: datetime
    actor: str
    action: str
    from_status: Status | None
    to_status: Status
    note: str | None
    data: dict[str, Any]


class NewIncident(BaseModel):
    """What the rules engine (or a test) asks to open; attaches if one is open already.

    `signal_ids` are the signals of the log behind it; without them (a test) the incident
    counts `signal_count` signals."""

    rule_id: str
    rule_version: int
    group_key: str
    category: str
    priority: Priority
    area: str
    site: str | None = None
    building: str | None = None
    floor: str | None = None
    title: str
    first_signal_at: datetime
    last_signal_at: datetime
    signal_ids: list[int] = Field(default_factory=list)
    signal_count: int = Field(default=1, ge=1)
    lat: float | None = None
    lon: float | None = None
    dispatch: Literal["nearest", "none"] = "none"
    evidence: list[Any] = Field(default_factory=list)
    # The device whose signal opened it: for `dispatch: nearest`, where it is.
    source_id: str | None = None

    @property
    def count(self) -> int:
        return len(self.signal_ids) or self.signal_count


class Attachment(BaseModel):
    """Signals the rules engine adds to an open incident of (rule, group)."""

    rule_id: str
    group_key: str
    priority: Priority
    signal_at: datetime
    signal_ids: list[int] = Field(default_factory=list)
    evidence: list[Any] = Field(default_factory=list)
