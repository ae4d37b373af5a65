"""A rate-limited channel's requests, as a token bucket in PostgreSQL that every sender process
shares: a burst of a quarter of the rate at once, then the rest spread over the minute, so no
60 s window ever holds more requests than the channel's rate."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from psycopg import AsyncConnection
from psycopg.rows import DictRow


def shape(rate_per_minute: int) -> tuple[float, float]:
    """(bucket size, tokens per second)."""
    capacity = max(1, rate_per_minute // 4)
    return float(capacity), max(rate_per_minute - capacity, 1) / 60.0


async def take(
    conn: AsyncConnection[DictRow],
    channel_id: str,
    rate_per_minute: int,
    wanted: int,
    now: datetime,
) -> tuple[int, datetime | None]:
    """Take up to `wanted` requests' worth; (how many, when the next one is due if none).
    Inside the caller's transaction, which holds the channel's lock."""
    capacity, refill = shape(rate_per_minute)
    cur = await conn.execute(
        "SELECT tokens, at FROM channel_budgets WHERE channel_id = %s FOR UPDATE", (channel_id,)
    )
    row = await cur.fetchone()
    tokens = capacity
    if row is not None:
        elapsed = max((now - row["at"]).total_seconds(), 0.0)
        tokens = min(capacity, row["tokens"] + elapsed * refill)
    taken = min(wanted, math.floor(tokens))
    tokens -= taken
    await conn.execute(
        "INSERT INTO channel_budgets (channel_id, tokens, at) VALUES (%s, %s, %s)"
        " ON CONFLICT (channel_id) DO UPDATE SET tokens = excluded.tokens, at = excluded.at",
        (channel_id, tokens, now),
    )
    if taken:
        return taken, None
    return 0, now + timedelta(seconds=(1.0 - tokens) / refill)
