"""Keyset pagination: the cursor is the opaque form of the last id on a page."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from typing import Generic, TypeVar

from psycopg.rows import DictRow
from pydantic import BaseModel

from hub.errors import Invalid

MAX_LIMIT = 500
M = TypeVar("M", bound=BaseModel)


class Page(BaseModel, Generic[M]):
    """A page of a listing; pass `next` back as `cursor` for the following page."""

    items: list[M]
    next: str | None = None


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


_BAD_CURSOR = "cursor is not one this API returned"
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
AREA_CODE = re.compile(r"^\d{4,12}$")


def decode_cursor(cursor: str | None, *, shape: re.Pattern[str] = _ID) -> str:
    """The text id (of `shape`) to continue after; '' for the first page."""
    if not cursor:
        return ""
    value = _decode(cursor)
    if not shape.match(value):
        raise Invalid(_BAD_CURSOR, field="cursor")
    return value


def decode_int_cursor(cursor: str | None) -> int | None:
    """The numeric id to continue after; None for the first page."""
    if not cursor:
        return None
    value = _decode(cursor)
    if not value.isascii() or not value.isdigit() or len(value) > 18:
        raise Invalid(_BAD_CURSOR, field="cursor")
    return int(value)


def _decode(cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise Invalid(_BAD_CURSOR, field="cursor") from None


def page_of(model: type[M], rows: list[DictRow], limit: int, *, key: str = "id") -> Page[M]:
    """A page from rows fetched with `limit + 1`; the extra row only says there is more. The
    cursor is the last row's `key` (text, or a number for `decode_int_cursor`)."""
    return page_with(model.model_validate, rows, limit, key=key)


def page_with(
    shape: Callable[[DictRow], M], rows: list[DictRow], limit: int, *, key: str = "id"
) -> Page[M]:
    """`page_of` for rows that `shape` turns into items (a secret left out, a document
    unfolded)."""
    more = len(rows) > limit
    return Page[M](
        items=[shape(row) for row in rows[:limit]],
        next=encode_cursor(str(rows[limit - 1][key])) if more else None,
    )
