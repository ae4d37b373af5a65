"""The migration runner on a real PostgreSQL: twice over, concurrently, and tamper detection."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import psycopg
import pytest

from hub import migrations
from hub.db import connect
from hub.migrations import Migration, MigrationError, discover, migrate
from tests.services import scratch_database


@pytest.fixture
def empty_db(pg_server: str) -> Iterator[str]:
    with scratch_database(pg_server) as url:
        yield url


async def run_migrate(url: str) -> list[str]:
    conn = await connect(url)
    async with conn:
        return await migrate(conn)


def test_runs_twice_and_applies_once(empty_db: str) -> None:
    first = asyncio.run(run_migrate(empty_db))
    assert first == [f"{m.package}/{m.version:03d}_{m.name}" for m in discover()]
    assert "devices/001_registry" in first and "api/001_tokens" in first
    assert asyncio.run(run_migrate(empty_db)) == []
    with psycopg.connect(empty_db) as conn:
        rows = conn.execute("SELECT package, version, variant FROM schema_migrations").fetchall()
        tables = {
            r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname='public'")
        }
    assert len(rows) == len(first) and {r[2] for r in rows} == {"plain"}
    assert {"areas", "devices", "cameras", "units", "api_tokens"} <= tables


def test_concurrent_runners_do_not_collide(empty_db: str) -> None:
    async def both() -> list[list[str]]:
        return list(await asyncio.gather(run_migrate(empty_db), run_migrate(empty_db)))

    results = asyncio.run(both())
    assert sorted(len(r) for r in results) == [0, len(discover())]


def test_an_edited_migration_is_refused(empty_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    asyncio.run(run_migrate(empty_db))
    original = discover()

    def edited(packages: tuple[str, ...] = migrations.PACKAGES) -> list[Migration]:
        first = original[0]
        changed = Migration(
            first.package, first.version, first.name, first.sql + "\n-- edited", None, None
        )
        return [changed, *original[1:]]

    monkeypatch.setattr(migrations, "discover", edited)
    with pytest.raises(MigrationError, match="changed after it was applied"):
        asyncio.run(run_migrate(empty_db))


def test_a_failing_migration_leaves_nothing_behind(
    empty_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = Migration(
        "devices", 999, "broken", "CREATE TABLE half_done (x int); SELEC 1;", None, None
    )
    monkeypatch.setattr(migrations, "discover", lambda *a: [broken])
    with pytest.raises(MigrationError, match="devices/999_broken failed"):
        asyncio.run(run_migrate(empty_db))
    with psycopg.connect(empty_db) as conn:
        assert conn.execute("SELECT to_regclass('half_done')").fetchone() == (None,)
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone() == (0,)


def test_timescale_and_plain_variants_are_chosen_by_the_server(
    empty_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_variants = Migration(
        "devices",
        998,
        "series",
        "CREATE TABLE series (ts timestamptz NOT NULL, v double precision);",
        timescale_sql="SELECT create_hypertable('series', 'ts');",
        plain_sql="CREATE INDEX series_ts_brin ON series USING brin (ts);",
    )
    monkeypatch.setattr(migrations, "discover", lambda *a: [with_variants])
    asyncio.run(run_migrate(empty_db))
    with psycopg.connect(empty_db) as conn:
        variant = conn.execute("SELECT variant FROM schema_migrations").fetchone()
        index = conn.execute("SELECT to_regclass('series_ts_brin')").fetchone()
    # This server has no timescaledb (the Timescale path is exercised by make test-timescale).
    assert variant == ("plain",) and index is not None and index[0] is not None
