"""PostgreSQL client tools that match the server a test talks to.

pg_dump refuses a server newer than itself ("server version mismatch"), so the system's
pg_dump cannot dump the embedded PostgreSQL: each test uses the server's own pg_dump."""

from __future__ import annotations

import contextlib
import glob
import re
import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest

from hub.embedded import postgres_wheel


def server_major(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SHOW server_version_num").fetchone()
    assert row is not None
    return int(row[0]) // 10000


def candidates() -> list[Path]:
    """Every pg_dump this machine has: the embedded server's, Debian's, the one on PATH."""
    found: list[Path] = []
    with contextlib.suppress(ImportError):  # the wheel is not installed
        found.append(postgres_wheel.bin_dir() / "pg_dump")
    found += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_dump"))]
    on_path = shutil.which("pg_dump")
    if on_path:
        found.append(Path(on_path))
    return [p for p in found if p.is_file()]


def tool_major(pg_dump: Path) -> int | None:
    try:
        out = subprocess.run([str(pg_dump), "--version"], capture_output=True, text=True,
                             timeout=10, check=True).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r"(\d+)(?:\.\d+)?", out)
    return int(found[1]) if found else None


def pg_dump_for(database_url: str) -> str:
    """The pg_dump of the server's own major version (a newer one reads older servers too);
    skips the test, saying why, when this machine has none."""
    major = server_major(database_url)
    versions = {p: tool_major(p) for p in candidates()}
    exact = [p for p, v in versions.items() if v == major]
    newer = sorted((v, str(p)) for p, v in versions.items() if v is not None and v > major)
    if exact:
        return str(exact[0])
    if newer:
        return newer[0][1]
    seen = ", ".join(f"{p} ({v})" for p, v in versions.items()) or "none"
    pytest.skip(f"no pg_dump for PostgreSQL {major} on this machine (found: {seen})")


def dump_data(database_url: str) -> str:
    """`pg_dump --data-only` of the database, as text."""
    return subprocess.run([pg_dump_for(database_url), "--data-only", database_url],
                          capture_output=True, text=True, check=True, timeout=60).stdout  # fmt: skip
