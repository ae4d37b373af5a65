"""The signal log: ids become visible in order, so a reader after a cursor never skips a
lower id that commits late."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime

import psycopg
import pytest
from psycopg import AsyncConnection
from psycopg.rows import DictRow

from hub import signal_log
from hub.contracts import Signal
from hub.db import connect
from tests.eventually import eventually

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def signal(source: str) -> Signal:
    return Signal(ts=NOW, kind="smoke_alarm", source_id=source, source_type="smoke_sensor",
                  area="440311001002", building="3栋")  # fmt: skip


def read(database_url: str, after: int) -> tuple[list[str], int]:
    async def run() -> tuple[list[str], int]:
        conn = await connect(database_url)
        async with conn:
            found, top = await signal_log.read_after(conn, after)
        return [s.source_id for s in found], top

    return asyncio.run(run())


@pytest.fixture
def empty_log(database_url: str, clean_registry: None) -> str:
    return database_url


def test_ids_taken_without_the_lock_can_be_skipped(empty_log: str) -> None:
    """The hazard the log's lock exists for: a lower id that commits after a higher one is
    behind a reader that has already moved past it."""
    insert = (
        "INSERT INTO signals (ts, kind, source_id, source_type, area)"
        " VALUES (%s, 'smoke_alarm', %s, 'smoke_sensor', '440311001002')"
    )
    with psycopg.connect(empty_log) as slow, psycopg.connect(empty_log) as fast:
        slow.execute(insert, (NOW, "SLOW"))  # takes the lower id, commits later
        fast.execute(insert, (NOW, "FAST"))
        fast.commit()
        seen, cursor = read(empty_log, 0)
        assert seen == ["FAST"]
        slow.commit()
    assert read(empty_log, cursor)[0] == []  # SLOW is lost to this reader


def lock_waiters(database_url: str) -> int:
    """How many sessions on this database wait for a lock."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname ="
                           " current_database() AND wait_event_type = 'Lock'").fetchone()  # fmt: skip
    return int(row[0]) if row else 0


def test_append_makes_ids_visible_in_order(empty_log: str) -> None:
    """With `append`, the second writer cannot take ids until the first has committed, so
    the reader sees the first writer's signals before (or with) the second's, never after."""
    second_done = threading.Event()

    async def hold_first() -> AsyncConnection[DictRow]:
        conn = await connect(empty_log)
        await signal_log.append(conn, [signal("FIRST")])  # in a transaction, not committed
        return conn

    loop = asyncio.new_event_loop()
    held = loop.run_until_complete(hold_first())

    def second() -> None:
        async def run() -> None:
            conn = await connect(empty_log)
            async with conn:
                await signal_log.append(conn, [signal("SECOND")])
                await conn.commit()

        asyncio.run(run())
        second_done.set()

    thread = threading.Thread(target=second, daemon=True)
    thread.start()
    # Proof the second append is running, and waiting: its backend waits on a lock.
    eventually(lambda: lock_waiters(empty_log), what="the second append waiting on a lock")
    assert not second_done.is_set(), "the second append did not wait for the first to commit"
    assert read(empty_log, 0)[0] == []  # nothing visible yet, so nothing to skip
    loop.run_until_complete(held.commit())
    thread.join(timeout=10)
    assert second_done.is_set()
    seen, _ = read(empty_log, 0)
    assert seen == ["FIRST", "SECOND"]
    loop.run_until_complete(held.close())
    loop.close()


def test_a_reader_moves_past_other_areas(empty_log: str) -> None:
    async def run() -> tuple[list[Signal], int]:
        conn = await connect(empty_log)
        async with conn:
            async with conn.transaction():
                await signal_log.append(conn, [signal("A"), signal("B")])
            return await signal_log.read_after(conn, 0, area_prefix="440312")

    found, top = asyncio.run(run())
    assert found == [] and top >= 2  # nothing of its own, yet past both
