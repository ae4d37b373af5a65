"""Numbered SQL migrations per package, applied once each and recorded in schema_migrations.

Each package keeps `migrations/NNN_name.sql`. A migration may come with a
`NNN_name.timescale.sql` and a `NNN_name.plain.sql` companion: after the main file, the first
runs where the timescaledb extension is available, the second where it is not, so both storage
paths are code.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

from psycopg import AsyncConnection
from psycopg.rows import DictRow

from hub.logs import get_logger
from hub.timescale import enable_timescale

# Order matters: a package may reference tables of the packages before it.
PACKAGES = ("hub", "devices", "api", "ingest", "rules", "incidents", "notify", "vision", "gb28181")
_FILE = re.compile(r"^(?P<version>\d{3})_(?P<name>[a-z0-9_]+)\.sql$")
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
    def checksum(self) -> str:
        body = self.sql + (self.timescale_sql or "") + (self.plain_sql or "")
        return hashlib.sha256(body.encode()).hexdigest()


def discover(packages: tuple[str, ...] = PACKAGES) -> list[Migration]:
    """Every migration shipped with the given packages, in apply order."""
    found: list[Migration] = []
    for package in packages:
        folder = resources.files(package) / "migrations"
        if not folder.is_dir():
            continue
        files = {entry.name: entry for entry in folder.iterdir()}
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
        cur = await conn.execute("SELECT package, version, checksum FROM schema_migrations")
        applied = {(r["package"], r["version"]): r["checksum"] for r in await cur.fetchall()}
        done: list[str] = []
        for mig in discover():
            label = f"{mig.package}/{mig.version:03d}_{mig.name}"
            key = (mig.package, mig.version)
            if key in applied:
                if applied[key] != mig.checksum:
                    raise MigrationError(
                        f"{label} was changed after it was applied; add a new migration instead"
                    )
                continue
            await _apply(conn, mig, timescale=timescale)
            log.info("migration applied", migration=label, timescale=timescale)
            done.append(label)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))


async def _apply(conn: AsyncConnection[DictRow], mig: Migration, *, timescale: bool) -> None:
    extra = mig.timescale_sql if timescale else mig.plain_sql
    variant = "timescale" if timescale else "plain"
    try:
        async with conn.transaction():
            # Migration files are trusted SQL shipped inside the package.
            await conn.execute(mig.sql)
            if extra:
                await conn.execute(extra)
            await conn.execute(
                "INSERT INTO schema_migrations (package, version, name, checksum, variant)"
                " VALUES (%s, %s, %s, %s, %s)",
                (mig.package, mig.version, mig.name, mig.checksum, variant),
            )
    except Exception as exc:
        raise MigrationError(f"{mig.package}/{mig.version:03d}_{mig.name} failed: {exc}") from exc
