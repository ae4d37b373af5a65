"""Rejected messages, kept with their reason for the integrator, never with personal data.

The first bytes of a rejected payload help an integrator see what a device sent, but a
payload can hold an ID number or a name in shapes no filter foresees (split numbers, other
field names). So bytes are kept only when the message came from a registered device that is
not an ID-card reader and nothing in it looks like a person: no CJK text (names, addresses),
no run of 15 or more digits once separators are removed (ID numbers, IMEIs), no card or
name fields. Everything else keeps its reason and detail only (design §3).
"""

from __future__ import annotations

import re
from datetime import datetime

from psycopg import AsyncConnection
from psycopg.rows import DictRow
from pydantic import BaseModel, Field

from hub.paging import Page, decode_int_cursor, page_of
from idcard.numbers import ascii_digits
from ingest.decode import Message, Rejection

_HEAD_BYTES = 256
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]")
_LONG_NUMBER = re.compile(r"\d{15,}")
_SEPARATORS = re.compile(r"[^0-9A-Za-z]")
_LONG_ID = re.compile(r"\d{15,}[\dXx]?")
_CJK_RUN = re.compile(_CJK.pattern + "+")
_PERSONAL_KEYS = re.compile(r"(?i)card|id_?number|idno|name|birth|address|姓名|身份证")


def safe_head(message: Message, rejection: Rejection) -> str | None:
    """The first bytes of a rejected payload when they can hold no personal data, else None."""
    if rejection.device_type is None or rejection.device_type == "id_reader":
        return None
    text = message.payload[: 4 * _HEAD_BYTES].decode("utf-8", errors="replace")
    if _CJK.search(text) or _PERSONAL_KEYS.search(text):
        return None
    if _LONG_NUMBER.search(_SEPARATORS.sub("", ascii_digits(text))):  # ４４０３… too
        return None
    return text[:_HEAD_BYTES].replace("\x00", "\ufffd")


async def copy_dead_letters(
    conn: AsyncConnection[DictRow], rejected: list[tuple[Message, Rejection]]
) -> None:
    if not rejected:
        return
    async with (
        conn.cursor() as cur,
        cur.copy(
            "COPY dead_letters (received_at, topic, device_id, area, size, head, reason,"
            " detail) FROM STDIN"
        ) as copy,
    ):
        for message, rejection in rejected:
            await copy.write_row(
                (
                    message.received_at,
                    redact(message.topic)[:512],
                    redact(rejection.device_id) if rejection.device_id else None,
                    rejection.area,
                    len(message.payload),
                    safe_head(message, rejection),
                    rejection.reason.value,
                    redact(rejection.detail)[:1000],
                )
            )


def redact(text: str) -> str:
    """A topic or detail as kept: a sender can put an ID number or a name where a device id
    belongs, so long digit runs and CJK text are masked; NUL (which PostgreSQL refuses) too."""
    text = _LONG_ID.sub("[number]", text)
    return _CJK_RUN.sub("[text]", text).replace("\x00", "\ufffd")


class DeadLetter(BaseModel):
    """A rejected message as the API shows it: never a payload byte that could hold a person."""

    id: int
    received_at: datetime
    topic: str
    device_id: str | None
    area: str | None
    reason: str
    detail: str
    size: int = Field(description="payload bytes")
    head: str | None = Field(
        description="the payload's first bytes, only when they can hold no personal data"
    )


async def list_dead_letters(
    conn: AsyncConnection[DictRow],
    *,
    scope: str,
    device_id: str | None = None,
    reason: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Page[DeadLetter]:
    """Newest first, within `scope` (one with no area, such as a push no token could place,
    is the admin's alone)."""
    before = decode_int_cursor(cursor)
    cur = await conn.execute(
        """
        SELECT id, received_at, topic, device_id, area, reason, detail, size, head
        FROM dead_letters
        WHERE (%(scope)s = '' OR area LIKE %(scope)s || '%%')
          AND (%(device)s::text IS NULL OR device_id = %(device)s)
          AND (%(reason)s::text IS NULL OR reason = %(reason)s)
          AND (%(since)s::timestamptz IS NULL OR received_at >= %(since)s)
          AND (%(before)s::bigint IS NULL OR id < %(before)s)
        ORDER BY id DESC LIMIT %(limit)s
        """,
        {
            "scope": scope,
            "device": device_id,
            "reason": reason,
            "since": since,
            "before": before,
            "limit": limit + 1,
        },
    )
    return page_of(DeadLetter, await cur.fetchall(), limit)
