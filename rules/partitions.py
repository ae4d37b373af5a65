"""Which rules process evaluates which areas: one process per area-prefix partition.

Correlation state (windows, pending `for`s, open groups) lives in the one process whose
partition holds the area, so two processes must never take overlapping prefixes (`440311`
and `440311001`, or `` and anything). A process claims its prefix in `rule_partitions` and
holds a session-level advisory lock on a key of its own for as long as it lives: a claim
whose lock nobody holds belongs to a process that died (SIGKILL included, since the server
ends a session whose socket closes) and is cleared by the next claimant.
"""

from __future__ import annotations

import secrets

from psycopg import AsyncConnection
from psycopg.rows import DictRow

from hub.errors import Conflict


class PartitionTaken(Conflict):
    """An overlapping partition is held by a live process."""


def overlaps(a: str, b: str) -> bool:
    return a.startswith(b) or b.startswith(a)


async def claim(conn: AsyncConnection[DictRow], prefix: str, holder: str) -> int:
    """Claim `prefix` for this connection's session; returns the lock key. `conn` must stay
    open (and idle) for as long as the claim should hold."""
    key = secrets.randbits(62)
    async with conn.transaction():
        # One claimant at a time, so that two overlapping claims cannot both succeed.
        await conn.execute("LOCK TABLE rule_partitions IN EXCLUSIVE MODE")
        cur = await conn.execute("SELECT prefix, lock_key, holder FROM rule_partitions")
        for row in await cur.fetchall():
            if await _free(conn, row["lock_key"]):
                await conn.execute(
                    "DELETE FROM rule_partitions WHERE prefix = %s", (row["prefix"],)
                )
            elif overlaps(row["prefix"], prefix):
                raise PartitionTaken(
                    f"area prefix {prefix or '(all areas)'!r} overlaps partition"
                    f" {row['prefix'] or '(all areas)'!r} held by {row['holder']};"
                    " give each rules process a prefix of its own (e.g. --area 440311"
                    " and --area 440312)",
                    field="area",
                )
        await conn.execute("SELECT pg_advisory_lock(%s)", (key,))
        await conn.execute(
            "INSERT INTO rule_partitions (prefix, lock_key, holder) VALUES (%s, %s, %s)",
            (prefix, key, holder),
        )
    return key


async def release(conn: AsyncConnection[DictRow], prefix: str, key: int) -> None:
    async with conn.transaction():
        await conn.execute(
            "DELETE FROM rule_partitions WHERE prefix = %s AND lock_key = %s", (prefix, key)
        )
        await conn.execute("SELECT pg_advisory_unlock(%s)", (key,))


async def _free(conn: AsyncConnection[DictRow], key: int) -> bool:
    """Whether nobody holds the lock (taking it for a moment to find out)."""
    cur = await conn.execute("SELECT pg_try_advisory_lock(%s) AS got", (key,))
    row = await cur.fetchone()
    if row and row["got"]:
        await conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
        return True
    return False
