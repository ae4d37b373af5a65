"""The signal contract (DESIGN §4): what ingest and vision hand to the rules engine.

Ingest stores signals in the same transaction as the message that caused them and, once that
commits, passes them to every subscriber of the process's `SignalBus`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hub.logs import get_logger

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Signal:
    """Something that happened at a place, in event time."""

    ts: datetime
    kind: str
    source_id: str
    source_type: str
    area: str
    site: str | None = None
    building: str | None = None
    value: float | None = None
    confidence: float = 1.0
    attrs: dict[str, Any] = field(default_factory=dict)


Subscriber = Callable[[Sequence[Signal]], Awaitable[None]]


class SignalBus:
    """In-process fan-out of committed signals, in commit order."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    async def publish(self, signals: Sequence[Signal]) -> None:
        if not signals:
            return
        for subscriber in self._subscribers:
            try:
                await subscriber(signals)
            except asyncio.CancelledError:
                raise
            except Exception:
                # One failing consumer must not stop ingest or the others; the signals are
                # stored, so it can catch up from the table.
                log.exception("signal subscriber failed", subscriber=repr(subscriber))


SIGNAL_COLUMNS = (
    "ts",
    "kind",
    "source_id",
    "source_type",
    "area",
    "site",
    "building",
    "value",
    "confidence",
    "attrs",
)


# Every signal kind ingest and vision raise; rules may match only these.
KINDS = frozenset(
    {
        "smoke_alarm", "smoke_alarm_cleared", "smoke_test", "tamper", "battery_low",
        "device_fault", "device_offline", "device_online",
        "id_watchlist_hit", "id_invalid", "id_expired", "id_impossible_travel",
        "camera_fire", "camera_smoke", "camera_tamper", "intrusion", "loitering", "crowd",
        "fall", "fire_lane_blocked", "ebike_in_elevator", "stream_lost", "stream_restored",
        "line_crossing",
    }
)  # fmt: skip
