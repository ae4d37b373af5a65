"""The migration runner on a real PostgreSQL: twice over, concurrently, tamper detection, and
tables that moved to another package (a database migrated before the move keeps them, once)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from hub import migrations
from hub.db import connect
from hub.migrations import PACKAGES, Migration, MigrationError, discover, migrate, read_folder
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


# ingest's migrations as they were before the idcard package took its tables out of them.
BEFORE_IDCARD = Path(__file__).parent / "migrations_before_idcard"


def before_idcard(*, without: tuple[str, ...] = ()) -> list[Migration]:
    """Every migration as a hub shipped them before the move (less those named `without`)."""
    found: list[Migration] = []
    for package in PACKAGES:
        if package == "ingest":
            found += read_folder("ingest", BEFORE_IDCARD / "ingest")
        elif package != "idcard":
            found += discover((package,))
    return [m for m in found if f"{m.package}/{m.version:03d}_{m.name}" not in without]


def schema(url: str) -> dict[str, set[tuple[str, ...]]]:
    """Tables' columns, indexes and constraints: what two databases must agree on."""
    queries = {
        "columns": "SELECT table_name, column_name, data_type, is_nullable,"
        " coalesce(column_default, '') FROM information_schema.columns"
        " WHERE table_schema = 'public'",
        "indexes": "SELECT tablename, indexdef FROM pg_indexes WHERE schemaname = 'public'",
        "constraints": "SELECT conrelid::regclass::text, pg_get_constraintdef(oid)"
        " FROM pg_constraint WHERE connamespace = 'public'::regnamespace",
    }
    with psycopg.connect(url) as conn:
        return {name: set(conn.execute(query).fetchall()) for name, query in queries.items()}


def recorded(url: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT package || '/' || lpad(version::text, 3, '0') || '_' || name, checksum"
            " FROM schema_migrations"
        ).fetchall()
    return dict(rows)


def test_a_database_from_before_the_idcard_package_keeps_its_tables_once(
    empty_db: str, pg_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as before:
        before.setattr(migrations, "discover", lambda *a: before_idcard())
        asyncio.run(run_migrate(empty_db))
    with psycopg.connect(empty_db) as conn:
        conn.execute(
            "INSERT INTO id_reads (ts, device_id, area, id_hash, id_masked, status, seq)"
            " VALUES (now(), 'RD-1', '440311001002', 'h', '4403**********123X', 'ok', 7)"
        )
        conn.execute("INSERT INTO registers (area, name) VALUES ('440311001002', '楼村')")
    assert asyncio.run(run_migrate(empty_db)) == []  # nothing created again
    assert asyncio.run(run_migrate(empty_db)) == []
    today = {m.label: m.checksum for m in discover()}
    kept = recorded(empty_db)
    assert kept["idcard/001_id_cards"] == today["idcard/001_id_cards"]
    assert kept["idcard/002_verdicts_registers"] == today["idcard/002_verdicts_registers"]
    assert kept["ingest/001_ingest"] != today["ingest/001_ingest"]  # as it was applied
    with psycopg.connect(empty_db) as conn:
        assert conn.execute("SELECT device_id, seq FROM id_reads").fetchall() == [("RD-1", 7)]
        assert conn.execute("SELECT name FROM registers").fetchall() == [("楼村",)]
    with scratch_database(pg_server) as fresh:
        asyncio.run(run_migrate(fresh))
        assert schema(empty_db) == schema(fresh)


def test_a_database_from_before_the_registers_gets_them_from_idcard(
    empty_db: str, pg_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    older = before_idcard(without=("ingest/006_verdicts_registers",))
    with monkeypatch.context() as before:
        before.setattr(migrations, "discover", lambda *a: older)
        asyncio.run(run_migrate(empty_db))
    assert asyncio.run(run_migrate(empty_db)) == ["idcard/002_verdicts_registers"]
    with scratch_database(pg_server) as fresh:
        asyncio.run(run_migrate(fresh))
        assert schema(empty_db) == schema(fresh)


def test_a_number_moved_away_is_not_taken_again(
    empty_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = Migration("ingest", 6, "new_thing", "SELECT 1;", None, None)
    today = discover()
    monkeypatch.setattr(migrations, "discover", lambda *a: [*today, taken])
    with pytest.raises(MigrationError, match="ingest/006 is retired"):
        asyncio.run(run_migrate(empty_db))
