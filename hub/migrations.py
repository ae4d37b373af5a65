"""Numbered SQL migrations per package, applied once each and recorded in schema_migrations.

Each package keeps `migrations/NNN_name.sql`. A migration may come with a
`NNN_name.timescale.sql` and a `NNN_name.plain.sql` companion: after the main file, the first
runs where the timescaledb extension is available, the second where it is not, so both storage
paths are code.

Tables move with the package that owns them. A migration that says, on a line of its own,
`-- moved-from: <package>/<NNN>_<name> sha256:<checksum>` holds what that migration held
when a database applied it with that checksum: it was moved, or split, out of it. On such a
database it is recorded as applied without running (its tables are there already, with their
rows), and the source's old checksum stays accepted beside its current one (what remains of a
split). A number moved away whole is retired: no other migration of its package may take it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

from psycopg import AsyncConnection
from psycopg.rows import DictRow

from hub.logs import get_logger
from hub.timescale import enable_timescale

# Order matters: a package may reference tables of the packages before it.
PACKAGES = (
    "hub",
    "devices",
    "api",
    "ingest",
    "idcard",
    "rules",
    "incidents",
    "notify",
    "vision",
    "gb28181",
)
_FILE = re.compile(r"^(?P<version>\d{3})_(?P<name>[a-z0-9_]+)\.sql$")
_MOVED_FROM = re.compile(
    r"^-- moved-from: (?P<package>[a-z0-9_]+)/(?P<version>\d{3})_(?P<name>[a-z0-9_]+)"
    r" sha256:(?P<checksum>[0-9a-f]{64})$",
    re.MULTILINE,
)
_LOCK_KEY = 0x5B_0001  # pg_advisory_lock key: one migration runner at a time per database

log = get_logger(__name__)


class MigrationError(RuntimeError):
    """A migration failed, or an applied one was changed after the fact."""


@dataclass(frozen=True)
class Migration:
    package: str
    version: int
    name: str
    sql: str
    timescale_sql: str | None
    plain_sql: str | None

    @property
    def label(self) -> str:
        return f"{self.package}/{self.version:03d}_{self.name}"

    @property
    def checksum(self) -> str:
        body = self.sql + (self.timescale_sql or "") + (self.plain_sql or "")
        return hashlib.sha256(body.encode()).hexdigest()

    @property
    def moved_from(self) -> list[MovedFrom]:
        """The migrations (as applied before) that held what this one holds."""
        return [
            MovedFrom(m["package"], int(m["version"]), m["name"], m["checksum"])
            for m in _MOVED_FROM.finditer(self.sql)
        ]


@dataclass(frozen=True)
class MovedFrom:
    package: str
    version: int
    name: str
    checksum: str  # of the source migration as databases applied it

    @property
    def key(self) -> tuple[str, int]:
        return (self.package, self.version)


def discover(packages: tuple[str, ...] = PACKAGES) -> list[Migration]:
    """Every migration shipped with the given packages, in apply order."""
    found: list[Migration] = []
    for package in packages:
        folder = resources.files(package) / "migrations"
        if folder.is_dir():
            found += read_folder(package, folder)
    return found


def read_folder(package: str, folder: Traversable) -> list[Migration]:
    """The migrations in one folder, by number, as `package`'s."""
    files = {entry.name: entry for entry in folder.iterdir()}
    found: list[Migration] = []
    for filename in sorted(files):
        match = _FILE.match(filename)
        if not match:
            continue
        stem = filename.removesuffix(".sql")
        ts = files.get(f"{stem}.timescale.sql")
        plain = files.get(f"{stem}.plain.sql")
        found.append(
            Migration(
                package=package,
                version=int(match["version"]),
                name=match["name"],
                sql=files[filename].read_text(encoding="utf-8"),
                timescale_sql=ts.read_text(encoding="utf-8") if ts else None,
                plain_sql=plain.read_text(encoding="utf-8") if plain else None,
            )
        )
    return found


@dataclass(frozen=True)
class _Applied:
    checksum: str
    variant: str


async def migrate(conn: AsyncConnection[DictRow]) -> list[str]:
    """Apply pending migrations; returns the names applied. Safe to run any number of times."""
    await conn.set_autocommit(True)
    await conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
    try:
        await conn.execute(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                package    text        NOT NULL,
                version    integer     NOT NULL,
                name       text        NOT NULL,
                checksum   text        NOT NULL,
                variant    text        NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (package, version)
            )
            """
        )
        timescale = await enable_timescale(conn)
        cur = await conn.execute(
            "SELECT package, version, checksum, variant FROM schema_migrations"
        )
        applied = {
            (r["package"], r["version"]): _Applied(r["checksum"], r["variant"])
            for r in await cur.fetchall()
        }
        migrations = discover()
        moves = _moves(migrations)
        done: list[str] = []
        for mig in migrations:
            key = (mig.package, mig.version)
            if key in applied:
                if applied[key].checksum not in _accepted(mig, moves):
                    raise MigrationError(
                        f"{mig.label} was changed after it was applied; add a new migration instead"
                    )
                continue
            held = [m for m in mig.moved_from if _matches(applied.get(m.key), m)]
            if held:
                await _record(conn, mig, applied[held[0].key].variant)
                log.info("migration moved here; recorded", migration=mig.label, held_by=held[0].key)
                continue
            await _apply(conn, mig, timescale=timescale)
            log.info("migration applied", migration=mig.label, timescale=timescale)
            done.append(mig.label)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))


def _moves(migrations: list[Migration]) -> dict[tuple[str, int], list[MovedFrom]]:
    """What each source migration handed on, by its (package, version); refuses a migration
    that took the number of one moved away whole."""
    moves: dict[tuple[str, int], list[MovedFrom]] = {}
    for mig in migrations:
        for source in mig.moved_from:
            moves.setdefault(source.key, []).append(source)
    for mig in migrations:
        taken = [m for m in moves.get((mig.package, mig.version), []) if m.name != mig.name]
        if taken:
            raise MigrationError(
                f"{mig.label}: {mig.package}/{mig.version:03d} is retired ({taken[0].name} moved"
                " to another package); give this migration the next free number"
            )
    return moves


def _accepted(mig: Migration, moves: dict[tuple[str, int], list[MovedFrom]]) -> set[str]:
    """The checksums an applied `mig` may carry: today's, and the one databases recorded
    before part of it moved to another package."""
    return {mig.checksum} | {m.checksum for m in moves.get((mig.package, mig.version), [])}


def _matches(recorded: _Applied | None, source: MovedFrom) -> bool:
    return recorded is not None and recorded.checksum == source.checksum


async def _record(conn: AsyncConnection[DictRow], mig: Migration, variant: str) -> None:
    await conn.execute(
        "INSERT INTO schema_migrations (package, version, name, checksum, variant)"
        " VALUES (%s, %s, %s, %s, %s)",
        (mig.package, mig.version, mig.name, mig.checksum, variant),
    )


async def _apply(conn: AsyncConnection[DictRow], mig: Migration, *, timescale: bool) -> None:
    extra = mig.timescale_sql if timescale else mig.plain_sql
    variant = "timescale" if timescale else "plain"
    try:
        async with conn.transaction():
            # Migration files are trusted SQL shipped inside the package.
            await conn.execute(mig.sql)
            if extra:
                await conn.execute(extra)
            await _record(conn, mig, variant)
    except Exception as exc:
        raise MigrationError(f"{mig.label} failed: {exc}") from exc
