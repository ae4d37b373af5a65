"""TimescaleDB detection: hypertables where the extension exists, plain PostgreSQL otherwise."""

from __future__ import annotations

from psycopg import AsyncConnection
from psycopg.rows import DictRow


async def timescale_available(conn: AsyncConnection[DictRow]) -> bool:
    """True when the server can load the timescaledb extension."""
    cur = await conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
    return await cur.fetchone() is not None


async def enable_timescale(conn: AsyncConnection[DictRow]) -> bool:
    """Create the extension when available; returns whether time-series tables use it."""
    if not await timescale_available(conn):
        return False
    await conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    return True


async def timescale_enabled(conn: AsyncConnection[DictRow]) -> bool:
    """True when this database has the extension installed (the migrations did it)."""
    cur = await conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")
    return await cur.fetchone() is not None
