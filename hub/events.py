"""Live events for command centres, fanned out across processes with PostgreSQL NOTIFY.

Producers call `announce` inside their transaction, so an event goes out exactly when what it
describes is committed. Payloads stay small (NOTIFY allows 8,000 bytes): listeners fetch details.
"""

from __future__ import annotations

import json
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import DictRow

EVENTS_CHANNEL = "sb_events"


async def announce(conn: AsyncConnection[DictRow], kind: str, **fields: Any) -> None:
    """Queue `{"type": kind, ...}` for delivery at commit; `area` decides who may see it."""
    payload = json.dumps({"type": kind, **fields}, default=str, ensure_ascii=False)
    await conn.execute("SELECT pg_notify(%s, %s)", (EVENTS_CHANNEL, payload))
