"""The notification log: what was sent where about which incident, and how it went."""

from __future__ import annotations

from psycopg import AsyncConnection
from psycopg.rows import DictRow

from hub.paging import Page, decode_int_cursor, page_of
from notify.models import Notification

_COLUMNS = (
    "id, incident_id, event, reason, repeat_no, channel_id, status, attempts, created_at,"
    " next_attempt_at, delivered_at, failed_at, last_status, last_answer, request_id"
)


async def list_notifications(
    conn: AsyncConnection[DictRow],
    *,
    scope: str,
    incident_id: int | None = None,
    channel_id: str | None = None,
    status: str | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Page[Notification]:
    """Newest first, for incidents in `scope`."""
    cur = await conn.execute(
        f"""
        SELECT {_COLUMNS} FROM notifications
        WHERE area LIKE %(scope)s
          AND (%(incident)s::bigint IS NULL OR incident_id = %(incident)s)
          AND (%(channel)s::text IS NULL OR channel_id = %(channel)s)
          AND (%(status)s::text IS NULL OR status = %(status)s)
          AND (%(before)s::bigint IS NULL OR id < %(before)s)
        ORDER BY id DESC LIMIT %(limit)s
        """,
        {
            "scope": scope + "%",
            "incident": incident_id,
            "channel": channel_id,
            "status": status,
            "before": decode_int_cursor(cursor),
            "limit": limit + 1,
        },
    )
    return page_of(Notification, await cur.fetchall(), limit)
