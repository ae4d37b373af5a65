"""Incident shapes at the API edge (design §6)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hub.contracts import Priority
from hub.text import PlainText
from incidents.states import Action, CloseReason, Status


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


class ActionIn(BaseModel):
    """`POST /incidents/{id}/actions`."""

    model_config = ConfigDict(extra="forbid")

    action: Action
    unit_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")] | None = None
    reason: CloseReason | None = None
    rating: Annotated[int, Field(ge=1, le=5)] | None = None
    note: Annotated[PlainText, Field(max_length=2000)] | None = None

    @model_validator(mode="after")
    def _needs(self) -> ActionIn:
        if self.action is Action.RATE and self.rating is None:
            raise ValueError("rate needs rating (1-5)")
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
    title: str
    first_signal_at: datetime
    last_signal_at: datetime
    signal_ids: list[int] = Field(default_factory=list)
    signal_count: int = Field(default=1, ge=1)
    lat: float | None = None
    lon: float | None = None
    dispatch: Literal["nearest", "none"] = "none"
    evidence: list[Any] = Field(default_factory=list)

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
