"""PostgreSQL LISTEN that survives a database restart: one helper for every follower.

`wakeups` yields whenever a notification arrives on one of the channels, when `idle` seconds
pass without one, and right after every (re)connection, flagged `reconnected`, since
notifications sent while the connection was down are lost: a follower then reconciles from
the tables. A lost connection is retried with backoff and reported through the probe.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

import psycopg
from psycopg import AsyncConnection, sql

from hub.backoff import Backoff, Retries
from hub.logs import get_logger
from hub.supervisor import Probe

log = get_logger(__name__)
_RECONNECT = Backoff(first_s=0.5, max_s=10.0)


@dataclass(frozen=True)
class Wakeup:
    notes: list[tuple[str, str]]  # (channel, payload)
    reconnected: bool = False

    @property
    def channels(self) -> set[str]:
        return {channel for channel, _ in self.notes}

    @property
    def payloads(self) -> list[str]:
        return [payload for _, payload in self.notes]


async def wakeups(
    url: str,
    channels: Sequence[str],
    *,
    idle: float | Callable[[], float],
    coalesce: float = 0.0,
    probe: Probe | None = None,
) -> AsyncIterator[Wakeup]:
    """Until cancelled. `idle` may be a function, asked before each wait. `coalesce`: after a
    notification, keep gathering for this long and yield them together (a CSV import's burst
    becomes one wakeup)."""
    retries = _RECONNECT.retries()
    while True:
        try:
            conn = await AsyncConnection.connect(url, autocommit=True)
        except psycopg.OperationalError as exc:
            await _lost(probe, exc, retries)
            continue
        try:
            async with conn:
                for channel in channels:
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                retries.succeeded()
                if probe:
                    probe.ready()
                yield Wakeup([], reconnected=True)
                while True:
                    wait = idle() if callable(idle) else idle
                    notes = [
                        (n.channel, n.payload)
                        async for n in conn.notifies(timeout=wait, stop_after=1)
                    ]
                    if notes and coalesce:
                        notes += [
                            (n.channel, n.payload) async for n in conn.notifies(timeout=coalesce)
                        ]
                    yield Wakeup(notes)
        except psycopg.OperationalError as exc:
            await _lost(probe, exc, retries)


async def _lost(probe: Probe | None, exc: Exception, retries: Retries) -> None:
    delay = retries.failed()
    log.warning("database connection for LISTEN lost; reconnecting", error=str(exc), delay_s=delay)
    if probe:
        probe.down(f"database: {type(exc).__name__}")
    await asyncio.sleep(delay)
