"""Resolve the services a command needs: configured ones, or embedded ones started here."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from devices.broker_config import HUB_USER, write_broker_files
from devices.registry import REGISTRY_CHANNEL
from hub.db import connect
from hub.embedded.broker import EmbeddedBroker, listen_address
from hub.embedded.postgres import EmbeddedPostgres
from hub.errors import HubError
from hub.listen import wakeups
from hub.logs import get_logger
from hub.migrations import migrate
from hub.secret import hmac_key, read_or_create, write_private
from hub.settings import Settings
from hub.supervisor import Probe
from rules.store import seed_builtin_rules

log = get_logger(__name__)
EMBEDDED_BROKER_FILE = "hub.json"


def embedded_broker_settings(settings: Settings) -> Settings | None:
    """Settings pointing at the broker of a `shaobing up` running on this SB_DATA_DIR."""
    path = settings.data_dir / "mqtt" / EMBEDDED_BROKER_FILE
    if not path.exists():
        return None
    found = json.loads(path.read_text(encoding="utf-8"))
    return settings.model_copy(
        update={"mqtt_url": found["url"], "mqtt_protocol": found["protocol"]}
    )


@dataclass
class Runtime:
    """Settings with every address filled in, and the embedded services behind them."""

    settings: Settings
    postgres: EmbeddedPostgres | None = None
    broker: EmbeddedBroker | None = None
    hub_password: str | None = None  # the embedded broker's password for the hub user

    @property
    def database_url(self) -> str:
        assert self.settings.database_url
        return self.settings.database_url


class NoHubHere(HubError):
    code = "no_hub"


@asynccontextmanager
async def database(
    settings: Settings, *, migrate_schema: bool = True, create: bool = True
) -> AsyncIterator[Runtime]:
    """A database for a command: SB_DATABASE_URL, or the embedded server (started if needed).

    `create=False` (every command but `up`): an SB_DATA_DIR that holds no hub is refused, so
    that a command run from another directory never starts a second, empty hub there."""
    runtime = Runtime(settings=settings)
    if not settings.database_url:
        postgres = EmbeddedPostgres(settings.data_dir)
        where = settings.data_dir.resolve()
        if not create and not postgres.initialised:
            raise NoHubHere(
                f"no hub in {where} (SB_DATA_DIR): run this where `shaobing up` runs, or set"
                " SB_DATA_DIR to its data directory, or SB_DATABASE_URL to its database"
            )
        log.info("using the embedded database", data_dir=str(where))
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        runtime.postgres = postgres
        url = await asyncio.to_thread(runtime.postgres.start)
        runtime.settings = settings.model_copy(update={"database_url": url})
    try:
        if migrate_schema:
            conn = await connect(runtime.database_url)
            async with conn:
                await migrate(conn)
                await seed_builtin_rules(conn)
        yield runtime
    finally:
        if runtime.postgres:
            await asyncio.to_thread(runtime.postgres.stop)


@asynccontextmanager
async def services(settings: Settings) -> AsyncIterator[Runtime]:
    """Everything `shaobing up` needs: database (migrated), broker, secrets."""
    async with database(settings) as runtime:
        hmac_key(runtime.settings)  # generated now so every process finds the same key
        if not settings.mqtt_url:
            await _start_broker(runtime)
        try:
            yield runtime
        finally:
            if runtime.broker:
                await asyncio.to_thread(runtime.broker.stop)
                (runtime.broker.dir / EMBEDDED_BROKER_FILE).unlink(missing_ok=True)


async def _start_broker(runtime: Runtime) -> None:
    settings = runtime.settings
    broker = EmbeddedBroker(settings.data_dir, amqtt_plugins="devices.amqtt_plugins")
    hub_password = read_or_create(broker.dir / "hub.password", nbytes=24)
    conn = await connect(runtime.database_url)
    async with conn:
        await write_broker_files(conn, broker.dir, hub_password=hub_password)
    host, port = listen_address(broker.dir, settings.mqtt_listen)
    await asyncio.to_thread(broker.start, port, host=host)
    runtime.broker = broker
    local = f"[{broker.local_host}]" if ":" in broker.local_host else broker.local_host
    url = f"mqtt://{HUB_USER}:{hub_password}@{local}:{broker.port}"
    protocol = "5" if broker.kind == "mosquitto" else "3.1.1"
    # `shaobing simulate` in another shell finds the embedded broker here.
    write_private(broker.dir / EMBEDDED_BROKER_FILE, json.dumps({"url": url, "protocol": protocol}))
    runtime.settings = settings.model_copy(update={"mqtt_url": url, "mqtt_protocol": protocol})
    runtime.hub_password = hub_password


async def follow_registry_for_broker(runtime: Runtime, probe: Probe) -> None:
    """A component: rewrite the embedded broker's password file and reload it whenever the
    registry changes (a burst, such as a CSV import, coalesced), and every minute."""
    broker, password = runtime.broker, runtime.hub_password
    assert broker is not None and password is not None
    async for _ in wakeups(
        runtime.database_url, [REGISTRY_CHANNEL], idle=60, coalesce=0.2, probe=probe
    ):
        conn = await connect(runtime.database_url)
        async with conn:
            await write_broker_files(conn, broker.dir, hub_password=password)
        broker.reload()
