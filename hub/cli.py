"""The `shaobing` command line."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from hub.settings import Settings, SettingsError, load_settings


@contextmanager
def _startup_errors() -> Iterator[None]:
    """Turn the failures a user can fix (a service that won't start) into one clear line."""
    from psycopg import OperationalError

    from hub.embedded.broker import BrokerError
    from hub.embedded.postgres import EmbeddedPostgresError
    from hub.migrations import MigrationError

    try:
        yield
    except KeyboardInterrupt:
        pass
    except (BrokerError, EmbeddedPostgresError, MigrationError, OperationalError, OSError) as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from None


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
@click.version_option(package_name="shaobing")
def main() -> None:
    """Shaobing (哨兵): IoT and video alert hub for smart-community safety."""


@main.command()
@click.option("--simulate", is_flag=True, help="feed the hub with simulated devices")
def up(simulate: bool) -> None:
    """Run the whole hub in one process group, on embedded services unless configured."""
    from hub.logs import configure_logging
    from hub.up import run_up
    from ingest.simulate import SimConfig

    settings = _settings()
    configure_logging(settings.log_level.value)
    sim = SimConfig(smoke=20, readers=5, rate=5, alarms=True) if simulate else None
    with _startup_errors():
        asyncio.run(run_up(settings, simulate=sim))


@main.command()
@click.option("--metrics-port", type=int, default=9101, show_default=True)
def ingest(metrics_port: int) -> None:
    """Run MQTT ingest and device health alone (needs SB_DATABASE_URL and SB_MQTT_URL)."""
    from prometheus_client import start_http_server

    from hub.logs import configure_logging
    from hub.up import run_ingest_alone

    settings = _settings()
    if not settings.database_url or not settings.mqtt_url:
        raise click.ClickException(
            "shaobing ingest needs SB_DATABASE_URL and SB_MQTT_URL;"
            " use `shaobing up` for embedded services"
        )
    configure_logging(settings.log_level.value)
    start_http_server(metrics_port, addr="127.0.0.1")
    with _startup_errors():
        asyncio.run(run_ingest_alone(settings))


@main.command()
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True)
@click.option(
    "--metrics-port", type=int, default=9110, show_default=True,
    help="Prometheus port of the first worker; the next ones count up from it",
)  # fmt: skip
def vision(workers: int, metrics_port: int) -> None:
    """Run vision workers alone: they share the enabled cameras through leases."""
    from hub.logs import configure_logging
    from vision.processes import WorkerPool, vision_available

    settings = _settings()
    if missing := vision_available():
        raise click.ClickException(missing)
    if not settings.database_url or not settings.mqtt_url:
        raise click.ClickException(
            "shaobing vision needs SB_DATABASE_URL and SB_MQTT_URL;"
            " use `shaobing up` for embedded services"
        )
    configure_logging(settings.log_level.value)
    pool = WorkerPool(settings, workers, metrics_port)
    pool.start()
    click.echo(f"vision: {workers} worker(s) started", err=True)
    try:
        while True:
            time.sleep(2)
            pool.check()
    except KeyboardInterrupt:
        pass
    finally:
        pool.stop()


@main.command()
@click.option("--smoke", default=100, show_default=True, help="simulated smoke sensors")
@click.option("--readers", default=10, show_default=True, help="simulated ID-card readers")
@click.option(
    "--rate", default=50.0, show_default=True, help="messages per second in all (0: unpaced)"
)
@click.option("--alarms", is_flag=True, help="raise occasional smoke alarms")
@click.option("--bad", is_flag=True, help="mix in about 2% malformed messages")
@click.option("--duration", type=float, default=None, help="stop after this many seconds")
@click.option("--count", type=int, default=None, help="stop after this many messages")
@click.option("--area", default="440311001002", show_default=True)
def simulate(
    smoke: int,
    readers: int,
    rate: float,
    alarms: bool,
    bad: bool,
    duration: float | None,
    count: int | None,
    area: str,
) -> None:
    """Register simulated devices and publish realistic traffic for them."""
    from hub.db import connect
    from hub.logs import configure_logging
    from hub.runtime import database, embedded_broker_settings
    from ingest.simulate import SimConfig, Simulator, register

    settings = _settings()
    configure_logging("WARNING")
    if not settings.mqtt_url:
        settings = embedded_broker_settings(settings) or settings
    if not settings.mqtt:
        raise click.ClickException("set SB_MQTT_URL, or start `shaobing up` first")
    cfg = SimConfig(
        smoke=smoke, readers=readers, rate=rate, alarms=alarms, bad=bad,
        duration=duration, count=count, area=area,
    )  # fmt: skip

    async def prepare() -> int:
        async with database(settings) as runtime:
            conn = await connect(runtime.database_url)
            async with conn:
                return await register(conn, cfg)

    with _startup_errors():
        created = asyncio.run(prepare())
    click.echo(f"simulate: {created} device(s) registered; publishing (Ctrl-C stops)", err=True)
    simulator = Simulator(
        settings.mqtt,
        cfg,
        mqtt_v5=settings.mqtt_protocol == "5",
        progress=lambda m: click.echo(m, err=True),
    )
    try:
        stats = simulator.run()
    except KeyboardInterrupt:
        simulator.stop()
        stats = simulator.stats
    click.echo(
        f"simulate: done, {stats.sent} sent, {stats.alarms} alarms, {stats.bad} malformed", err=True
    )


@main.command()
def api() -> None:
    """Run the HTTP API alone (needs SB_DATABASE_URL)."""
    from hub.logs import configure_logging
    from hub.up import run_api

    settings = _settings()
    if not settings.database_url:
        raise click.ClickException(
            "shaobing api needs SB_DATABASE_URL; use `shaobing up` for embedded services"
        )
    configure_logging(settings.log_level.value)
    with _startup_errors():
        asyncio.run(run_api(settings))


@main.command()
def migrate() -> None:
    """Apply pending database migrations (safe to run again)."""
    from hub.db import connect
    from hub.logs import configure_logging
    from hub.migrations import migrate as run_migrations
    from hub.runtime import database

    settings = _settings()
    configure_logging(settings.log_level.value)

    async def run() -> list[str]:
        async with database(settings, migrate_schema=False) as runtime:
            conn = await connect(runtime.database_url)
            async with conn:
                return await run_migrations(conn)

    with _startup_errors():
        applied = asyncio.run(run())
    click.echo(f"applied {len(applied)} migration(s)" + "".join(f"\n  {m}" for m in applied))


@main.group()
def token() -> None:
    """API tokens."""


@token.command("create")
@click.option(
    "--role",
    required=True,
    type=click.Choice(["admin", "integrator", "operator", "dispatcher", "viewer"]),
)
@click.option("--area", "area", default="", help="area code prefix the token is limited to")
@click.option("--name", default=None, help="a label for the token (default: role@area)")
def token_create(role: str, area: str, name: str | None) -> None:
    """Create a token and print it alone on stdout."""
    from api.tokens import Role, TokenIn, issue_token
    from devices.area_codes import check_area_prefix
    from hub.db import connect
    from hub.logs import configure_logging
    from hub.runtime import database

    settings = _settings()
    configure_logging("WARNING")
    try:
        check_area_prefix(area)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--area") from None
    data = TokenIn(name=name or f"{role}@{area or 'all'}", role=Role(role), area_prefix=area)

    async def run() -> str:
        async with database(settings) as runtime:
            conn = await connect(runtime.database_url)
            async with conn:
                issued = await issue_token(conn, data)
                await conn.commit()
                return issued.token

    with _startup_errors():
        click.echo(asyncio.run(run()))


@main.command("broker-config")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path))
@click.option(
    "--hub-password",
    envvar="SB_HUB_MQTT_PASSWORD",
    default=None,
    help="password for the hub's own MQTT user (default: from SB_MQTT_URL, else generated)",
)
def broker_config(out_dir: Path, hub_password: str | None) -> None:
    """Write a Mosquitto password file and ACL from the registry."""
    from devices.broker_config import HUB_USER, write_broker_files
    from hub.db import connect
    from hub.logs import configure_logging
    from hub.runtime import database
    from hub.secret import read_or_create

    settings = _settings()
    configure_logging("WARNING")
    mqtt = settings.mqtt
    if hub_password is None and mqtt and mqtt.username == HUB_USER and mqtt.password:
        hub_password = mqtt.password
    if hub_password is None:
        hub_password = read_or_create(out_dir / "hub.password", nbytes=24)
        click.echo(f"hub MQTT password written to {out_dir / 'hub.password'}", err=True)

    async def run() -> int:
        async with database(settings) as runtime:
            conn = await connect(runtime.database_url)
            async with conn:
                files = await write_broker_files(conn, out_dir, hub_password=hub_password)
                return files.accounts

    with _startup_errors():
        accounts = asyncio.run(run())
    click.echo(
        f"wrote {out_dir / 'passwd'} ({accounts} device(s) + {HUB_USER}) and {out_dir / 'acl'}"
    )
    click.echo(
        f"in mosquitto.conf: password_file {out_dir / 'passwd'} / acl_file {out_dir / 'acl'}",
        err=True,
    )


if __name__ == "__main__":
    sys.exit(main())
