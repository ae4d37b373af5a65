"""Per-connection temporary tables that batches are staged in before one INSERT ... SELECT."""

from __future__ import annotations

import weakref

from psycopg import AsyncConnection
from psycopg.pq import TransactionStatus
from psycopg.rows import DictRow

_STAGED: weakref.WeakSet[AsyncConnection[DictRow]] = weakref.WeakSet()


async def prepare_connection(conn: AsyncConnection[DictRow]) -> None:
    """The per-connection temp tables batches are staged in, created on first use.

    Remembered only when created outside a transaction: one created inside could be rolled
    back with it, so that connection checks again next time.
    """
    if conn in _STAGED:
        return
    idle = conn.info.transaction_status == TransactionStatus.IDLE
    await conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS _batch_uplinks"
        " (device_id text, seq bigint, ts timestamptz, channel text) ON COMMIT DELETE ROWS"
    )
    await conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS _batch_state (device_id text, last_seen timestamptz,"
        " online boolean, offline_since timestamptz, reported_offline boolean,"
        " battery_pct float8, rssi_dbm float8, fw text) ON COMMIT DELETE ROWS"
    )
    if idle:
        await conn.commit()
        _STAGED.add(conn)
