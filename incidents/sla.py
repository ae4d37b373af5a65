"""Accept and resolve deadlines per priority: a setting (`SB_SLA_<PRIORITY>=accept/resolve`);
and the time a summoned unit has to report in (`SB_SUMMON_<PRIORITY>`)."""

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


def _summon_defaults() -> dict[Priority, timedelta]:
    return {
        Priority.EMERGENCY: timedelta(minutes=15),
        Priority.MAJOR: timedelta(hours=2),
        Priority.ROUTINE: timedelta(days=1),
    }


@dataclass(frozen=True)
class Sla:
    by_priority: dict[Priority, Deadlines] = field(default_factory=_defaults)
    # How long a summoned unit has to report in, per whistle (`SB_SUMMON_<PRIORITY>`).
    summon: dict[Priority, timedelta] = field(default_factory=_summon_defaults)
    # How often the summoning level hears of a rating it still owes (一案一评).
    rating_remind: timedelta = timedelta(days=1)

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
        summon = {
            Priority.EMERGENCY: parse_duration(settings.summon_emergency),
            Priority.MAJOR: parse_duration(settings.summon_major),
            Priority.ROUTINE: parse_duration(settings.summon_routine),
        }
        return cls(found, summon, parse_duration(settings.summon_rating_remind))
