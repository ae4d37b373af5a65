"""Fixtures: a real PostgreSQL (SB_TEST_DATABASE_URL or embedded), the real API over HTTP.

Under pytest-xdist (`-n N`) each worker is a test session of its own, with its own scratch
database, broker and API; the embedded PostgreSQL, the one heavy service, is started once by
the controller and shared (see `pytest_configure`)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from hub.db import connect
from hub.migrations import migrate
from hub.settings import MqttUrl, Settings
from tests.services import (
    SharedPostgres,
    api_server,
    local_mosquitto,
    postgres_server,
    scratch_database,
)

ADMIN_TOKEN = "test-admin-token-0123456789"
REGISTRY_TABLES = (
    "areas, devices, cameras, units, api_tokens, uplinks, readings, device_state, dead_letters,"
    " id_reads, watchlists, watchlist_entries, signals, rules, rule_versions, incidents,"
    " incident_audit, incident_signals, silences, rule_cursors, rule_partitions, vision_workers,"
    " camera_leases, evidence, camera_stats, incident_events, channels, routes, notifications,"
    " notify_requests, channel_budgets, notify_templates, unit_links, incident_attachments,"
    " intake_keys, public_receipts, device_commands, registers, register_entries"
)


def pytest_configure(config: pytest.Config) -> None:
    """The xdist controller starts one embedded PostgreSQL for all its workers, which find it
    through SB_TEST_DATABASE_URL (they inherit the environment) and each make a scratch
    database on it: one server's start (and memory) instead of one per worker."""
    if not xdist_controller(config) or os.environ.get("SB_TEST_DATABASE_URL"):
        return
    shared = SharedPostgres()
    config.stash[SHARED_POSTGRES] = shared
    os.environ["SB_TEST_DATABASE_URL"] = shared.start()


def pytest_unconfigure(config: pytest.Config) -> None:
    shared = config.stash.get(SHARED_POSTGRES, None)
    if shared is not None:
        os.environ.pop("SB_TEST_DATABASE_URL", None)
        shared.stop()


SHARED_POSTGRES = pytest.StashKey[SharedPostgres]()

# Files that keep a core busy with the models: under xdist they share one worker, one after
# another, so that they never starve each other (or a timing-sensitive test) of the CPU.
MODEL_HEAVY = {
    "test_vision_analytics.py", "test_vision_quality.py", "test_vision_worker.py",
    "test_inference.py", "test_inference_server.py", "test_camera_settings.py",
    "test_regions.py", "test_decoding.py", "test_bench_cpu.py",
}  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """For `--dist loadgroup`: a file is one group (its module fixtures set up once, its tests
    in order, as `--dist loadfile`), and the model-heavy files are one group together."""
    for item in items:
        name = item.path.name
        item.add_marker(pytest.mark.xdist_group("models" if name in MODEL_HEAVY else name))


def xdist_controller(config: pytest.Config) -> bool:
    """Whether this process hands tests to xdist workers (`-n` of one or more)."""
    if hasattr(config, "workerinput") or config.getoption("collectonly"):
        return False
    return config.getoption("dist", "no") != "no" and bool(config.getoption("tx", None))


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with postgres_server(
        os.environ.get("SB_TEST_DATABASE_URL"), tmp_path_factory.mktemp("pg")
    ) as url:
        yield url


@pytest.fixture(scope="session")
def database_url(pg_server: str) -> Iterator[str]:
    """A migrated database of its own for this test session."""
    with scratch_database(pg_server) as url:

        async def run() -> None:
            conn = await connect(url)
            async with conn:
                await migrate(conn)

        asyncio.run(run())
        yield url


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        database_url=database_url,
        admin_token=ADMIN_TOKEN,  # type: ignore[arg-type]
        data_dir=tmp_path_factory.mktemp("data"),
        max_body_bytes=64 * 1024,
        max_import_bytes=1024 * 1024,
        max_attachment_bytes=1024 * 1024,
        public_reports_per_minute=100_000,  # the suite's residents all come from 127.0.0.1
        auth_failure_limit=100_000,  # the suite's wrong tokens all come from 127.0.0.1
        _env_file=None,  # type: ignore[call-arg]
    )


@pytest.fixture(scope="session")
def api_url(settings: Settings) -> Iterator[str]:
    with api_server(settings) as url:
        yield url


@pytest.fixture
def clean_registry(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {REGISTRY_TABLES} RESTART IDENTITY CASCADE")


@pytest.fixture
def admin(api_url: str, clean_registry: None) -> Iterator[httpx.Client]:
    """An HTTP client holding the admin token, on an empty registry."""
    with httpx.Client(
        base_url=api_url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=15
    ) as client:
        yield client


TokenFactory = Callable[[str, str], httpx.Client]


@pytest.fixture
def client_for(api_url: str) -> Iterator[TokenFactory]:
    """Make a client with a fresh token of a role and area prefix."""
    clients: list[httpx.Client] = []

    def make(role: str, area_prefix: str) -> httpx.Client:
        token = issue(api_url, role, area_prefix)
        client = httpx.Client(
            base_url=api_url, headers={"Authorization": f"Bearer {token}"}, timeout=15
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def issue(api_url: str, role: str, area_prefix: str) -> str:
    response = httpx.post(
        f"{api_url}/api/v1/tokens",
        json={"name": f"{role}@{area_prefix}", "role": role, "area_prefix": area_prefix},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert response.status_code == 201, response.text
    token: str = response.json()["token"]
    return token


@pytest.fixture(scope="session")
def mqtt_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MqttUrl]:
    """SB_TEST_MQTT_URL when given, else an anonymous-friendly mosquitto on a free port."""
    env = os.environ.get("SB_TEST_MQTT_URL")
    if env:
        yield MqttUrl.parse(env)
        return
    with local_mosquitto(tmp_path_factory.mktemp("mqtt")) as url:
        yield url


@pytest.fixture
def queueing_broker(tmp_path: Path) -> Iterator[MqttUrl]:
    """A mosquitto of the test's own that keeps a large queue for each session, as the
    embedded one does. (Stock mosquitto keeps 1,000 and drops the rest: any deployment must
    raise max_queued_messages for ingest to lose nothing across a restart.) Being the test's
    own, what it retains reaches no other test."""
    with local_mosquitto(tmp_path / "broker") as url:
        yield url
