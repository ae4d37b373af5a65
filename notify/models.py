"""Channels and routes as documents (`extra="forbid"`, every knob bounded and described), and
the notification log as the API shows it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, model_validator

from hub.area_codes import check_scope
from hub.contracts import Priority
from hub.durations import within
from hub.text import PlainText

ChannelKind = Literal["webhook", "wecom", "dingtalk", "feishu", "email"]
Language = Literal["zh-CN", "en"]
RouteEvent = Literal[
    "incident.created",
    "incident.updated",
    "incident.escalated",
    "incident.summon_overdue",
    "incident.rating_due",
]
# What may change an incident (incidents.states.Action, and the hub's own changes).
ChangeAction = Literal[
    "accept",
    "dispatch",
    "start",
    "resolve",
    "verify",
    "reject",
    "close",
    "rate",
    "acknowledge",
    "attach",
    "recover",
    "summon",
    "report_in",
    "rate_unit",
    "flag_unit",
    "rate_whistle",
]
# Robots of the chat platforms take 20 messages a minute each (their documented limit).
ROBOT_RATE = 20
ROBOTS = ("wecom", "dingtalk", "feishu")

Identifier = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Label = Annotated[PlainText, Field(min_length=1, max_length=200)]
Mobile = Annotated[str, Field(pattern=r"^\+?\d{5,15}$")]
UserId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")]
Email = Annotated[str, Field(pattern=r"^[^@\s]{1,64}@[^@\s]{1,255}$", max_length=320)]
Category = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]


def _scope(value: str) -> str:
    return check_scope(value)


AreaScope = Annotated[
    str,
    AfterValidator(_scope),
    Field(json_schema_extra={"pattern": r"^(\d{4}|\d{6}|\d{9}|\d{12})?$"}),
]
# Repeats are looked for among the last two days of notifications (notify.outbox), so a
# longer one would never come.
Repeat = Annotated[
    str, within(timedelta(seconds=30), timedelta(days=1)), Field(description="30s to 1d")
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Mentions(Strict):
    """Whom a robot's message calls out (企业微信 and 钉钉 by mobile, 企业微信 also by user id)."""

    mobiles: Annotated[list[Mobile], Field(max_length=50, title="mobiles to @")] = []
    user_ids: Annotated[list[UserId], Field(max_length=50, title="user ids to @")] = []
    all: bool = Field(default=False, title="@all")


class EmailSettings(Strict):
    """For `email`: the url is `smtp://user@host:587` (the password is the secret)."""

    to: Annotated[list[Email], Field(min_length=1, max_length=50, title="recipients")]
    sender: Email = Field(title="From address")
    starttls: bool = Field(default=True, title="upgrade to TLS with STARTTLS")


class ChannelIn(Strict):
    id: Identifier
    name: Label
    kind: ChannelKind
    area: AreaScope = Field(title="owner's area: it hears only incidents under it")
    url: Annotated[str, Field(min_length=1, max_length=2048)] = Field(
        title="the robot's webhook URL, your endpoint, or smtp://user@host:port"
    )
    secret: Annotated[SecretStr, Field(max_length=512)] | None = Field(
        default=None, title="signing key (webhook, 钉钉, 飞书) or SMTP password; write-only"
    )
    mentions: Mentions = Mentions()
    email: EmailSettings | None = None
    language: Language = Field(default="zh-CN", title="language of the messages")
    rate_per_minute: Annotated[int, Field(ge=1, le=600)] | None = Field(
        default=None, title="requests a minute at most (robots: 20 unless set lower)"
    )
    enabled: bool = True

    @model_validator(mode="after")
    def _fits_its_kind(self) -> ChannelIn:
        scheme = urlsplit(self.url).scheme
        if self.kind == "email":
            if scheme not in ("smtp", "smtps"):
                raise ValueError("an email channel's url is smtp://user@host:port")
            if self.email is None:
                raise ValueError("an email channel needs `email` (to, sender)")
        elif scheme not in ("http", "https") or not urlsplit(self.url).hostname:
            raise ValueError(f"a {self.kind} channel's url is an http(s) URL")
        elif self.email is not None:
            raise ValueError("`email` is for email channels only")
        if self.kind in ("dingtalk", "feishu") and self.secret is None:
            raise ValueError(f"a {self.kind} robot needs its signing secret (加签)")
        return self

    @property
    def rate(self) -> int | None:
        """Requests a minute this channel may get: a robot never more than its platform's."""
        if self.kind in ROBOTS:
            return min(self.rate_per_minute or ROBOT_RATE, ROBOT_RATE)
        return self.rate_per_minute

    def settings(self) -> dict[str, Any]:
        """What the `settings` column holds."""
        return self.model_dump(
            mode="json", include={"mentions", "email", "language", "rate_per_minute"}
        )


class Channel(BaseModel):
    """A channel as the API shows it: never its secret."""

    id: str
    name: str
    kind: ChannelKind
    area: str
    url: str
    has_secret: bool
    mentions: Mentions
    email: EmailSettings | None
    language: Language
    rate_per_minute: int | None
    enabled: bool
    created_at: datetime
    updated_at: datetime


class RouteMatch(Strict):
    events: Annotated[list[RouteEvent], Field(min_length=1, max_length=5)]
    actions: Annotated[list[ChangeAction], Field(max_length=16)] | None = Field(
        default=None, title="for incident.updated: which changes (default: all but `attach`)"
    )
    priority: Annotated[list[Priority], Field(max_length=3)] | None = None
    category: Annotated[list[Category], Field(max_length=32)] | None = None
    area_prefix: Annotated[str, Field(pattern=r"^\d{0,12}$")] = Field(
        default="", title="incidents under this area; for incident.escalated, the level it went to"
    )


class RouteIn(Strict):
    id: Identifier
    name: Label
    match: RouteMatch
    channels: Annotated[list[Identifier], Field(min_length=1, max_length=16)]
    repeat: Repeat | None = Field(
        default=None, title="send again this often while the incident is unaccepted"
    )
    repeat_max: Annotated[int, Field(ge=1, le=100)] = Field(default=3, title="repeats at most")
    enabled: bool = True


class Route(RouteIn):
    scope: str
    created_at: datetime
    updated_at: datetime


class Notification(BaseModel):
    """One message to one channel about one incident event, with how its delivery went."""

    id: int
    incident_id: int
    event: str
    reason: str = Field(
        description="route:<id>, unit:<id> (a dispatched or summoned unit) or parent:<id> (督办)"
    )
    repeat_no: int
    channel_id: str
    status: Literal["pending", "sending", "delivered", "failed"]
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    delivered_at: datetime | None
    failed_at: datetime | None
    last_status: int | None = Field(description="HTTP (or SMTP) status of the last attempt")
    last_answer: str | None = Field(description="the receiver's answer (or the error), cut")
    request_id: int | None = Field(description="the request that carried it (shared by a group)")
