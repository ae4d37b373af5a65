"""Real services for the tests: PostgreSQL and an MQTT broker, found or started."""

from __future__ import annotations

import getpass
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import uvicorn
from psycopg import sql

from hub.embedded.ports import free_port, wait_for_port
from hub.embedded.postgres import EmbeddedPostgres
from hub.settings import MqttUrl, Settings
from shaobing.components import hub_app


@contextmanager
def postgres_server(env_url: str | None, tmp: Path) -> Iterator[str]:
    """SB_TEST_DATABASE_URL when given, else an embedded server for this test run."""
    if env_url:
        yield env_url
        return
    server = EmbeddedPostgres(tmp, database="postgres")
    try:
        yield server.start()
    finally:
        server.stop()


class SharedPostgres:
    """An embedded PostgreSQL for several test processes at once (xdist's workers), with room
    for all their connections."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="sb-test-pg-"))
        self.server = EmbeddedPostgres(self.folder, database="postgres")

    def start(self) -> str:
        url = self.server.start()
        with psycopg.connect(url, autocommit=True) as conn:
            # Each worker runs an API pool, notifiers and hubs of its own; 100 is too few.
            conn.execute("ALTER SYSTEM SET max_connections = 500")
        self.server.stop()  # the setting takes a restart
        return self.server.start()

    def stop(self) -> None:
        try:
            self.server.stop()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


@contextmanager
def scratch_database(server_url: str) -> Iterator[str]:
    """A new, empty database on the server, dropped afterwards."""
    name = f"sb_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


class _ThreadServer(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the main thread owns signals
        pass


@contextmanager
def api_server(settings: Settings, *, port: int | None = None) -> Iterator[str]:
    """The real app on a real socket, served from a background thread (on `port`, to stand
    in for a restarted API process)."""
    port = port or free_port()
    config = uvicorn.Config(
        hub_app(settings),
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        proxy_headers=False,  # as `shaobing api` runs it: the app judges forwarded addresses
    )
    server = _ThreadServer(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test API server did not start")
        time.sleep(0.02)
    assert wait_for_port("127.0.0.1", port, timeout=5)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


class LocalMosquitto:
    """A mosquitto allowing anonymous clients, with a persistent store, that can be stopped
    and started again on the same port."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("mosquitto")
        if binary is None:
            pytest.skip(
                "mosquitto is not installed (apt-get install mosquitto); ingest tests need it"
            )
        folder.mkdir(parents=True, exist_ok=True)
        self.binary = binary
        self.url = MqttUrl("127.0.0.1", free_port(), None, None, tls=False)
        self.config = folder / "mosquitto.conf"
        self.config.write_text(
            f"listener {self.url.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {folder}/\nmax_queued_messages 1000000\n"
            f"max_inflight_messages 1000\nuser {getpass.getuser()}\n"
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> MqttUrl:
        self.process = subprocess.Popen(
            [self.binary, "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        assert wait_for_port("127.0.0.1", self.url.port, timeout=10), "mosquitto did not start"
        return self.url

    def stop(self) -> None:
        """SIGTERM: mosquitto writes its store (sessions, queued messages) on the way out."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@contextmanager
def local_mosquitto(folder: Path) -> Iterator[MqttUrl]:
    """A running `LocalMosquitto`, stopped on leaving."""
    broker = LocalMosquitto(folder)
    try:
        yield broker.start()
    finally:
        broker.stop()
