"""Accept and resolve deadlines per priority: a setting (`SB_SLA_<PRIORITY>=accept/resolve`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from hub.contracts import Priority
from hub.durations import parse_duration
from hub.settings import Settings


@dataclass(frozen=True)
class Deadlines:
    accept: timedelta
    resolve: timedelta


def _defaults() -> dict[Priority, Deadlines]:
    return {
        Priority.EMERGENCY: Deadlines(timedelta(minutes=1), timedelta(minutes=30)),
        Priority.MAJOR: Deadlines(timedelta(minutes=5), timedelta(hours=4)),
        Priority.ROUTINE: Deadlines(timedelta(minutes=30), timedelta(days=3)),
    }


@dataclass(frozen=True)
class Sla:
    by_priority: dict[Priority, Deadlines] = field(default_factory=_defaults)

    def __getitem__(self, priority: Priority) -> Deadlines:
        return self.by_priority[priority]

    @classmethod
    def from_settings(cls, settings: Settings) -> Sla:
        texts = {
            Priority.EMERGENCY: settings.sla_emergency,
            Priority.MAJOR: settings.sla_major,
            Priority.ROUTINE: settings.sla_routine,
        }
        found = {}
        for priority, text in texts.items():
            accept, _, resolve = text.partition("/")
            found[priority] = Deadlines(parse_duration(accept), parse_duration(resolve))
        return cls(found)
