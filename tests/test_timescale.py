"""Migrations and telemetry on TimescaleDB (`make test-timescale`; not part of `make test`).

Runs against PGlite with TimescaleDB 2.23 (PostgreSQL 17 in WASM) at SB_TIMESCALE_URL. Its
limits shape the test: one connection at a time, no COPY, and policy jobs only run when called.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest
from psycopg.rows import dict_row

from hub.migrations import migrate
from ingest.telemetry import bucketed
from tests.services import scratch_database
from tests.telemetry_data import START, as_tuples, sample_readings

pytestmark = pytest.mark.timescale
URL = os.environ.get("SB_TIMESCALE_URL")


@pytest.fixture(scope="module")
def timescale() -> Iterator[str]:
    if not URL:
        pytest.skip("SB_TIMESCALE_URL is not set (run `make test-timescale`)")
    asyncio.run(_migrate(URL))
    yield URL


async def _migrate(url: str) -> None:
    conn = await psycopg.AsyncConnection.connect(url, row_factory=dict_row, prepare_threshold=None)
    async with conn:
        await migrate(conn)
        assert await migrate(conn) == []  # and again: nothing to do


async def _buckets(url: str, bucket: timedelta, prepare: bool = True) -> list[tuple[object, ...]]:
    kwargs = {} if prepare else {"prepare_threshold": None}
    for attempt in range(20):  # PGlite may still be closing the previous connection
        try:
            conn = await psycopg.AsyncConnection.connect(url, row_factory=dict_row, **kwargs)  # type: ignore[arg-type]
            break
        except psycopg.OperationalError:
            if attempt == 19:
                raise
            await asyncio.sleep(0.25)
    async with conn:
        found = await bucketed(conn, "SD-TS", START, START + timedelta(days=3), bucket)
    return as_tuples(found)


def query(url: str, sql: str) -> list[tuple[object, ...]]:
    with _connect(url) as conn:
        return conn.execute(sql).fetchall()  # type: ignore[arg-type]


def _connect(url: str, **kwargs: object) -> psycopg.Connection[tuple[object, ...]]:
    """PGlite serves one connection at a time and may still be closing the last one."""
    for attempt in range(20):
        try:
            return psycopg.connect(url, prepare_threshold=None, **kwargs)  # type: ignore[arg-type]
        except psycopg.OperationalError:
            if attempt == 19:
                raise
            time.sleep(0.25)
    raise AssertionError("unreachable")


def test_time_series_tables_are_hypertables_with_policies(timescale: str) -> None:
    hypertables = {r[0]: r[1] for r in query(
        timescale, "SELECT hypertable_name, compression_enabled FROM timescaledb_information.hypertables"
    )}  # fmt: skip
    assert hypertables == {"readings": True, "signals": True, "id_reads": False}
    jobs = query(
        timescale,
        "SELECT proc_name, hypertable_name FROM timescaledb_information.jobs"
        " WHERE proc_name IN ('policy_compression', 'policy_retention', 'policy_refresh_continuous_aggregate')"
        " ORDER BY 1, 2",
    )
    names = {(p, h) for p, h in jobs}
    assert ("policy_compression", "readings") in names and ("policy_retention", "readings") in names
    assert ("policy_compression", "signals") in names and ("policy_retention", "id_reads") in names
    assert any(p == "policy_refresh_continuous_aggregate" for p, _ in names)
    caggs = query(timescale, "SELECT view_name FROM timescaledb_information.continuous_aggregates")
    assert caggs == [("readings_hourly",)]
    variants = {r[0] for r in query(timescale, "SELECT DISTINCT variant FROM schema_migrations")}
    assert variants == {"timescale"}


def test_buckets_match_plain_postgresql(timescale: str, pg_server: str) -> None:
    rows = sample_readings("SD-TS")
    with _connect(timescale) as conn:
        conn.execute("DELETE FROM readings WHERE device_id = 'SD-TS'")
        conn.cursor().executemany(
            "INSERT INTO readings (ts, device_id, metric, value) VALUES (%s, %s, %s, %s)", rows
        )
    with scratch_database(pg_server) as plain:
        asyncio.run(_migrate_plain(plain))
        with psycopg.connect(plain) as conn:
            conn.cursor().executemany(
                "INSERT INTO readings (ts, device_id, metric, value) VALUES (%s, %s, %s, %s)", rows
            )
        for bucket in (timedelta(minutes=15), timedelta(hours=1), timedelta(days=1)):
            on_timescale = asyncio.run(_buckets(timescale, bucket, prepare=False))
            on_plain = asyncio.run(_buckets(plain, bucket))
            assert on_timescale and on_timescale == on_plain, bucket


def test_continuous_aggregate_agrees_with_the_raw_query(timescale: str) -> None:
    with _connect(timescale, autocommit=True) as conn:
        job = conn.execute(
            "SELECT job_id FROM timescaledb_information.jobs"
            " WHERE proc_name = 'policy_refresh_continuous_aggregate'"
        ).fetchone()
        assert job is not None
        # Background workers never run under PGlite; refresh the whole range by hand.
        conn.execute("CALL refresh_continuous_aggregate('readings_hourly', NULL, NULL)")
        hourly = conn.execute(
            "SELECT bucket, metric, n FROM readings_hourly WHERE device_id = 'SD-TS' ORDER BY 1, 2"
        ).fetchall()
    raw = [
        (b, m, c)
        for b, m, _, _, _, c in asyncio.run(_buckets(timescale, timedelta(hours=1), prepare=False))
    ]
    assert hourly == raw


async def _migrate_plain(url: str) -> None:
    conn = await psycopg.AsyncConnection.connect(url, row_factory=dict_row)
    async with conn:
        await migrate(conn)


def test_the_signal_log_keeps_its_ids_and_compression(timescale: str) -> None:
    insert = (
        "INSERT INTO signals (ts, kind, source_id, source_type, area)"
        " VALUES (now(), 'smoke_alarm', 'SD-TS', 'smoke_sensor', '440311001002') RETURNING id"
    )
    with _connect(timescale) as conn:
        first = conn.execute(insert).fetchone()  # type: ignore[arg-type]
        second = conn.execute(insert).fetchone()  # type: ignore[arg-type]
        conn.commit()
    assert first and second and 0 < first[0] < second[0]
    compressed = query(
        timescale,
        "SELECT compression_enabled FROM timescaledb_information.hypertables"
        " WHERE hypertable_name = 'signals'",
    )
    assert compressed == [(True,)]
