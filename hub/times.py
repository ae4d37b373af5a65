"""The hub's time zone, and the one type for a datetime that people give the hub.

A datetime without an offset (`2026-12-01T09:30:00`) means wall-clock time where the hub is:
the zone `SB_TIMEZONE` names (Asia/Shanghai unless set), never UTC by accident. Every
datetime the API takes (bodies and query parameters) is a `Moment`, so they all read it so.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator

DEFAULT_ZONE = "Asia/Shanghai"
_zone = ZoneInfo(DEFAULT_ZONE)


def check_zone(name: str) -> ZoneInfo:
    """The IANA zone of that name; ValueError when there is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(f"{name!r} is not an IANA time zone such as Asia/Shanghai") from None


def use_zone(name: str) -> None:
    """Make `name` the zone naive datetimes are read in (the process's SB_TIMEZONE)."""
    global _zone
    _zone = check_zone(name)


def hub_zone() -> ZoneInfo:
    return _zone


def aware(value: datetime) -> datetime:
    """The datetime itself when it has an offset, else the same wall-clock time in the hub's
    zone."""
    return value if value.tzinfo is not None else value.replace(tzinfo=_zone)


# RFC 3339 (or epoch seconds, read as UTC); without an offset, in the hub's zone.
Moment = Annotated[datetime, AfterValidator(aware)]
