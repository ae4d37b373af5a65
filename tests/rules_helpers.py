"""Helpers for tests that need the rules engine on the signal log."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import DictRow

from hub import signal_log
from hub.contracts import Signal
from hub.db import connect
from hub.supervisor import Probe
from rules.consumer import RulesConfig, RulesConsumer
from rules.store import seed_builtin_rules
from tests.threads import in_background


def seed(database_url: str) -> None:
    async def run() -> None:
        conn = await connect(database_url)
        async with conn:
            await seed_builtin_rules(conn)

    asyncio.run(run())


class RulesDriver:
    """A RulesConsumer stepped by hand, on a clock the test sets: signals are stored in the
    log as ingest stores them, then `step` runs one consumer transaction, as a wakeup would."""

    def __init__(self, database_url: str, now: datetime, **config: Any) -> None:
        self.database_url = database_url
        self.now = now
        self.config = RulesConfig(database_url=database_url, **config)
        self.loop = asyncio.new_event_loop()
        self.conn: AsyncConnection[DictRow] | None = None
        self.consumer = self.restart()

    def restart(self) -> RulesConsumer:
        """A fresh consumer, as after a crash: it rebuilds its state from the database."""
        if self.conn is not None:
            self.loop.run_until_complete(self.conn.close())
        self.conn = self.loop.run_until_complete(connect(self.database_url))
        self.consumer = RulesConsumer(self.config, clock=lambda: self.now)
        self.loop.run_until_complete(self.consumer.rebuild(self.conn))
        return self.consumer

    def store(self, signals: Sequence[Signal], received_at: datetime | None = None) -> None:
        async def run() -> None:
            conn = await connect(self.database_url)
            async with conn, conn.transaction():
                await signal_log.append(conn, signals, received_at=received_at or self.now)

        self.loop.run_until_complete(run())

    def step(self, now: datetime | None = None) -> None:
        if now is not None:
            self.now = now
        assert self.conn is not None
        while self.loop.run_until_complete(self.consumer.step(self.conn)):
            pass

    def feed(self, signals: Sequence[Signal], received_at: datetime | None = None) -> None:
        """Store the signals (received now, unless said otherwise), then step."""
        self.store(signals, received_at)
        self.step()

    def close(self) -> None:
        if self.conn is not None:
            self.loop.run_until_complete(self.conn.close())
        self.loop.close()


@contextmanager
def running_rules(database_url: str, **config: Any) -> Iterator[RulesConsumer]:
    """A real RulesConsumer (partition claim, LISTEN, ticks) in a thread of its own; yields
    once it has started consuming."""
    consumer = RulesConsumer(RulesConfig(database_url=database_url, **config))
    probe = Probe("rules")
    with in_background(lambda: consumer.run(probe), lambda: probe.up, what="rules consumer"):
        yield consumer
