"""How a message reaches each kind of channel. A transport takes one message (which may name
several incidents) and returns the receiver's answer; it never raises for the receiver's
failures, which the sender retries or records."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from notify.delivery import Answer
from notify.models import ChannelIn, Mentions


@dataclass(frozen=True, slots=True)
class Item:
    """One notification in a message: its incident as the API shows it, and why."""

    notification_id: int
    idempotency_key: str
    event: str
    incident: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Outgoing:
    channel: ChannelIn
    title: str
    text: str  # Markdown
    items: list[Item]
    sent_at: datetime
    mentions: Mentions = field(default_factory=Mentions)  # the channel's and the unit's


class Transport(Protocol):
    async def send(self, message: Outgoing) -> Answer: ...


def secret_of(channel: ChannelIn) -> str:
    return channel.secret.get_secret_value() if channel.secret else ""
