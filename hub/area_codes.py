"""Administrative area codes: GB/T 2260 district codes extended to streets and communities."""

from __future__ import annotations

import re
from enum import StrEnum

_CODE = re.compile(r"^(\d{4}|\d{6}|\d{9}|\d{12})$")
_PREFIX = re.compile(r"^\d{0,12}$")


class AreaLevel(StrEnum):
    CITY = "city"
    DISTRICT = "district"
    STREET = "street"
    COMMUNITY = "community"


_LEVELS = {4: AreaLevel.CITY, 6: AreaLevel.DISTRICT, 9: AreaLevel.STREET, 12: AreaLevel.COMMUNITY}
_PARENT_LENGTH = {12: 9, 9: 6, 6: 4}
# The part each level adds to its parent's code; all zeros would mean "the parent itself".
_SEGMENT = {6: slice(4, 6), 9: slice(6, 9), 12: slice(9, 12)}


def check_area_code(code: str) -> str:
    """Return `code` when it is a valid 4/6/9/12-digit area code, else raise ValueError."""
    if not _CODE.match(code):
        raise ValueError(
            f"area code must be 4 (city), 6 (district), 9 (street) or 12 (community) digits,"
            f" got {code!r}"
        )
    if not 11 <= int(code[:2]) <= 82:
        raise ValueError(f"area code {code!r} does not start with a GB/T 2260 province code")
    segment = _SEGMENT.get(len(code))
    if segment and set(code[segment]) == {"0"}:
        parent = code[: _PARENT_LENGTH[len(code)]]
        raise ValueError(f"area code {code!r} names its parent; use {parent!r}")
    return code


def check_area_prefix(prefix: str) -> str:
    """A scope prefix: empty (everything) or up to 12 digits."""
    if not _PREFIX.match(prefix):
        raise ValueError(f"area prefix must be 0 to 12 digits, got {prefix!r}")
    return prefix


def area_level(code: str) -> AreaLevel:
    return _LEVELS[len(code)]


def parent_code(code: str) -> str | None:
    """The code one level up (12 → 9 → 6 → 4 digits); None for a city."""
    length = _PARENT_LENGTH.get(len(code))
    return code[:length] if length else None


def check_scope(prefix: str) -> str:
    """A token's (or a rules partition's) area: everything ('') or a whole city, district,
    street or community. A prefix of another length would cover several areas of a level
    (5 digits: ten districts)."""
    if prefix == "":
        return prefix
    try:
        return check_area_code(prefix)
    except ValueError:
        raise ValueError(
            "an area scope is empty (every area) or an area code of 4, 6, 9 or 12 digits,"
            f" got {prefix!r}"
        ) from None
