"""Camera leases in PostgreSQL: workers claim a fair share with FOR UPDATE SKIP LOCKED, renew
them on every heartbeat, and a dead worker's cameras fall to the others when its leases lapse."""

from __future__ import annotations

import math
from datetime import timedelta

from psycopg import AsyncConnection
from psycopg.rows import DictRow


async def register_worker(
    conn: AsyncConnection[DictRow], worker_id: str, host: str, pid: int
) -> None:
    """A worker with its models loaded: it analyses, and shares the cameras."""
    await conn.execute(
        "INSERT INTO vision_workers (id, host, pid) VALUES (%s, %s, %s)"
        " ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), analysing = true, problem = NULL",
        (worker_id, host, pid),
    )


async def waiting_worker(
    conn: AsyncConnection[DictRow],
    worker_id: str,
    host: str,
    pid: int,
    problem: str | None,
    lease: timedelta,
) -> None:
    """A worker without models: listed (and heard) but given no camera; `problem` says why
    it cannot analyse, None while it merely waits for a camera to need its models."""
    await conn.execute(
        "DELETE FROM vision_workers WHERE heartbeat_at < now() - 10 * %s::interval", (lease,)
    )
    await conn.execute(
        "INSERT INTO vision_workers (id, host, pid, analysing, problem)"
        " VALUES (%s, %s, %s, false, %s)"
        " ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), analysing = false,"
        " problem = excluded.problem",
        (worker_id, host, pid, problem),
    )


async def heartbeat(
    conn: AsyncConnection[DictRow], worker_id: str, cameras: list[str], lease: timedelta
) -> list[str]:
    """Renew this worker's leases, give back more than its share, claim up to it.

    `cameras` are the enabled cameras; returns the ids this worker holds now. One transaction.
    """
    async with conn.transaction():
        await conn.execute(
            "UPDATE vision_workers SET heartbeat_at = now() WHERE id = %s", (worker_id,)
        )
        await conn.execute(
            "DELETE FROM vision_workers WHERE heartbeat_at < now() - 10 * %s::interval", (lease,)
        )
        await conn.execute("DELETE FROM camera_leases WHERE NOT (camera_id = ANY(%s))", (cameras,))
        await conn.execute(
            "INSERT INTO camera_leases (camera_id) SELECT unnest(%s::text[])"
            " ON CONFLICT (camera_id) DO NOTHING",
            (cameras,),
        )
        cur = await conn.execute(
            "UPDATE camera_leases SET expires_at = now() + %s WHERE worker_id = %s"
            " AND expires_at > now() RETURNING camera_id",
            (lease, worker_id),
        )
        held = sorted(row["camera_id"] for row in await cur.fetchall())
        share = await _fair_share(conn, len(cameras), lease)
        if len(held) > share:
            await release(conn, worker_id, held[share:])
            return held[:share]
        cur = await conn.execute(
            "SELECT camera_id FROM camera_leases"
            " WHERE worker_id IS NULL OR worker_id = %s OR expires_at <= now()"
            " ORDER BY camera_id FOR UPDATE SKIP LOCKED",
            (worker_id,),
        )
        free = [row["camera_id"] for row in await cur.fetchall() if row["camera_id"] not in held]
        claimed = free[: share - len(held)]
        if claimed:
            await conn.execute(
                "UPDATE camera_leases SET worker_id = %s, claimed_at = now(),"
                " expires_at = now() + %s WHERE camera_id = ANY(%s)",
                (worker_id, lease, claimed),
            )
        return sorted(held + claimed)


async def _fair_share(conn: AsyncConnection[DictRow], cameras: int, lease: timedelta) -> int:
    cur = await conn.execute(
        "SELECT count(*) AS n FROM vision_workers WHERE analysing"
        " AND heartbeat_at > now() - %s::interval",
        (lease,),
    )
    row = await cur.fetchone()
    workers = max(1, int(row["n"]) if row else 1)
    return math.ceil(cameras / workers)


async def release(conn: AsyncConnection[DictRow], worker_id: str, cameras: list[str]) -> None:
    await conn.execute(
        "UPDATE camera_leases SET worker_id = NULL, expires_at = '-infinity'"
        " WHERE worker_id = %s AND camera_id = ANY(%s)",
        (worker_id, cameras),
    )


async def retire(conn: AsyncConnection[DictRow], worker_id: str) -> None:
    """A clean stop: give every lease back at once and leave the worker list."""
    await conn.execute(
        "UPDATE camera_leases SET worker_id = NULL, expires_at = '-infinity' WHERE worker_id = %s",
        (worker_id,),
    )
    await conn.execute("DELETE FROM vision_workers WHERE id = %s", (worker_id,))
