"""Resident ID numbers (GB 11643): checks, keyed hash and masks. Nothing here logs a number."""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
_SHAPE = re.compile(r"^[0-9]{17}[0-9X]$")


class IdProblem(StrEnum):
    CHECK_DIGIT = "check_digit"
    BIRTH_DATE = "birth_date"
    REGION = "region"


class NotAnIdNumber(ValueError):
    """The text is not an ID number: wrong length or characters (or, for `checked`, a check
    digit that does not match)."""


def ascii_digits(text: str) -> str:
    """NFKC (fullwidth `４`, `Ｘ` and mathematical digits become ASCII), then every other
    decimal digit (Arabic-Indic, Devanagari, Thai, ...) as its ASCII digit: a number typed or
    read in any script is the same number, to check, hash and mask."""
    folded = unicodedata.normalize("NFKC", text)
    if folded.isascii():
        return folded
    return "".join(str(unicodedata.decimal(c)) if c.isdecimal() else c for c in folded)


def normalise(id_number: str) -> str:
    """In ASCII digits (`ascii_digits`), upper-case, trimmed; raises NotAnIdNumber unless it
    has the 18-character shape. Every number read, listed or registered passes here, so that
    all of them hash alike."""
    value = ascii_digits(id_number).strip().upper()
    if not _SHAPE.match(value):
        raise NotAnIdNumber("an ID number has 17 digits and a digit or X")
    return value


def checked(id_number: str) -> str:
    """`normalise`d, and its check digit must match (NotAnIdNumber otherwise): the numbers a
    watch list or a register keeps, where a mistyped one would never match a card."""
    number = normalise(id_number)
    if check_digit(number[:17]) != number[17]:
        raise NotAnIdNumber("check digit does not match")
    return number


def check_digit(first17: str) -> str:
    total = sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK[total % 11]


def problems(id_number: str, *, today: date) -> list[IdProblem]:
    """What is wrong with a well-shaped number: check digit, birth date, region code."""
    found = []
    if check_digit(id_number[:17]) != id_number[17]:
        found.append(IdProblem.CHECK_DIGIT)
    birth = birth_date(id_number)
    if birth is None or birth > today or birth.year < 1900:
        found.append(IdProblem.BIRTH_DATE)
    if not 11 <= int(id_number[:2]) <= 82:
        found.append(IdProblem.REGION)
    return found


def birth_date(id_number: str) -> date | None:
    try:
        return date(int(id_number[6:10]), int(id_number[10:12]), int(id_number[12:14]))
    except ValueError:
        return None


def id_hash(secret: bytes, id_number: str) -> str:
    """HMAC-SHA256 of the normalised number: joins reads and watch lists without the number."""
    return hmac.new(secret, id_number.encode(), hashlib.sha256).hexdigest()


def mask_id(id_number: str) -> str:
    """`4403**********123X`: region and the last four stay, enough for a person to tell apart."""
    return id_number[:4] + "*" * 10 + id_number[-4:]


def mask_name(name: str) -> str:
    """`张*`, `欧阳**`: the family name stays (two characters for a compound surname)."""
    name = name.strip()
    if len(name) <= 1:
        return name
    keep = 2 if len(name) >= 4 else 1
    return name[:keep] + "*" * (len(name) - keep)


@dataclass(frozen=True)
class CardDates:
    valid_from: date | None
    valid_to: date | None  # None means long-term (长期)


def parse_card_date(value: str | None) -> date | None:
    """`YYYYMMDD`; '长期' (long-term) and empty give None."""
    if not value or value.strip() in ("长期", "long", "LONG"):
        return None
    text = ascii_digits(value).strip()
    if not re.fullmatch(r"[0-9]{8}", text):
        raise ValueError(f"dates are YYYYMMDD, got {text!r}")
    return date(int(text[:4]), int(text[4:6]), int(text[6:8]))
