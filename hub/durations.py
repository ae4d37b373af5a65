"""Durations as people write them: `90s`, `10m`, `2h`, `1d`, `1h30m`, `500ms`.

The one parser of the hub: every duration a document, a request or a setting carries is read
here, within the bounds of the field that takes it. It is arithmetic on whole milliseconds
before any timedelta is made, so no number, however long, can overflow (a field gets a
ValueError naming the bounds, which the API answers as a 422 naming the field).
"""

from __future__ import annotations

import re
from datetime import timedelta

from pydantic import AfterValidator

_PART = re.compile(r"([0-9]+)(ms|s|m|h|d)", re.ASCII)
_WHOLE = re.compile(r"(?:[0-9]+(?:ms|s|m|h|d))+", re.ASCII)
_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
MAX_TEXT = 32  # characters: `1d23h59m59s999ms` is 16
ZERO = timedelta(0)
MAX = timedelta(days=30)


def parse_duration(text: object, *, low: timedelta = ZERO, high: timedelta = MAX) -> timedelta:
    """The timedelta of a duration string between `low` and `high` (inclusive); ValueError
    says what is wrong, and nothing else is ever raised."""
    if not isinstance(text, str) or len(text) > MAX_TEXT or not _WHOLE.fullmatch(text):
        shown = text[:MAX_TEXT] + "…" if isinstance(text, str) and len(text) > MAX_TEXT else text
        raise ValueError(
            f"a duration is a number and a unit (ms, s, m, h, d), like 90s or 1h30m; got {shown!r}"
        )
    ms = sum(int(n) * _MS[u] for n, u in _PART.findall(text))
    allowed = f"from {say(low)} to {say(high)} here"
    if ms > high // timedelta(milliseconds=1):
        raise ValueError(f"{text} is longer than {_words(high)} ({allowed})")
    if ms < low // timedelta(milliseconds=1):
        raise ValueError(f"{text} is shorter than {_words(low)} ({allowed})")
    return timedelta(milliseconds=ms)


def within(low: timedelta = ZERO, high: timedelta = MAX) -> AfterValidator:
    """A pydantic check that a duration string parses within [low, high]; the string is kept
    as written. Use as `Annotated[str, within(...)]`."""

    def check(text: str) -> str:
        parse_duration(text, low=low, high=high)
        return text

    return AfterValidator(check)


def say(span: timedelta) -> str:
    """A timedelta in the notation parse_duration reads: `1h30m`, `0s`."""
    ms = span // timedelta(milliseconds=1)
    if ms == 0:
        return "0s"
    parts = []
    for unit in ("d", "h", "m", "s", "ms"):
        count, ms = divmod(ms, _MS[unit])
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


_WORDS = {"d": "day", "h": "hour", "m": "minute", "s": "second", "ms": "millisecond"}


def _words(span: timedelta) -> str:
    """`30 days`, `1 hour`, else the notation (`1h30m`)."""
    text = say(span)
    match = _PART.fullmatch(text)
    if not match:
        return text
    count, unit = int(match[1]), _WORDS[match[2]]
    return f"{count} {unit}{'' if count == 1 else 's'}"
