"""Durations as rules write them: `90s`, `10m`, `2h`, `1d`, `1h30m`."""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+)(ms|s|m|h|d)")
_WHOLE = re.compile(r"^(\d+(ms|s|m|h|d))+$")
_UNIT = {"ms": "milliseconds", "s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
MAX = timedelta(days=30)


def parse_duration(text: str) -> timedelta:
    """The timedelta of a duration string; ValueError names what is wrong."""
    if not isinstance(text, str) or not _WHOLE.match(text):
        raise ValueError(
            f"a duration is a number and a unit (ms, s, m, h, d), like 90s or 1h30m; got {text!r}"
        )
    span = sum((timedelta(**{_UNIT[u]: int(n)}) for n, u in _PART.findall(text)), timedelta())
    if span > MAX:
        raise ValueError(f"{text} is longer than 30 days")
    return span
