"""The `shaobing` command line."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from hub.settings import Settings, SettingsError, load_settings
from hub.times import use_zone

F = TypeVar("F", bound=Callable[..., Any])

_STORE = ("database_url", "data_dir", "log_level")
_BROKER = ("mqtt_url", "mqtt_protocol")


def settings_help(*names: str) -> str:
    """A command's epilog: the SB_* settings it reads, each with its default."""
    if not names:
        return "Settings: none (no SB_* variable or .env file changes what it does)."
    lines = ["\b", "Settings (environment or .env):"]
    for name in names:
        field = Settings.model_fields[name]
        default = field.default
        if default is None or default == []:
            shown = "unset"
        elif isinstance(default, Path) and not default.is_absolute():
            shown = f"./{default}"
        else:
            shown = str(getattr(default, "value", default))
        lines.append(f"  SB_{name.upper()} ({shown}): {field.description}")
    return "\n".join(lines)


@contextmanager
def _startup_errors() -> Iterator[None]:
    """Turn the failures a user can fix (a service that won't start) into one clear line."""
    from psycopg import OperationalError

    from hub.embedded.broker import BrokerError
    from hub.embedded.postgres import EmbeddedPostgresError
    from hub.errors import HubError
    from hub.migrations import MigrationError

    try:
        yield
    except KeyboardInterrupt:
        pass
    except HubError as exc:  # e.g. a rules partition that overlaps a live one
        raise click.ClickException(exc.message) from None
    except (BrokerError, EmbeddedPostgresError, MigrationError, OperationalError, OSError) as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from None


def _settings() -> Settings:
    try:
        settings = load_settings()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    use_zone(settings.timezone)  # the zone of every datetime and schedule given without one
    return settings


@click.group()
@click.version_option(package_name="shaobing")
def main() -> None:
    """Shaobing (哨兵): IoT and video alert hub for smart-community safety."""


_HTTP_HOST = click.option(
    "--http-host",
    default="127.0.0.1",
    show_default=True,
    help="where /healthz, /readyz and /metrics listen (0.0.0.0 in a container)",
)


def _http_port(default: int) -> Callable[[F], F]:
    return click.option(
        "--http-port",
        "--metrics-port",
        "http_port",
        type=click.IntRange(0, 65535),
        default=default,
        show_default=True,
        help="port of /healthz, /readyz and /metrics (0: any free port)",
    )


def _say_data_dir(settings: Settings) -> None:
    """A command on the embedded database says whose it is: the one under SB_DATA_DIR."""
    if not settings.database_url:
        click.echo(f"using the hub in {settings.data_dir.resolve()} (SB_DATA_DIR)", err=True)


def _needs(settings: Settings, command: str, *, mqtt: bool) -> None:
    missing = [
        name
        for name, value in (
            ("SB_DATABASE_URL", settings.database_url),
            ("SB_MQTT_URL", settings.mqtt_url if mqtt else "x"),
        )
        if not value
    ]
    if missing:
        raise click.ClickException(
            f"shaobing {command} needs {' and '.join(missing)};"
            " use `shaobing up` for embedded services"
        )


@main.command(epilog=settings_help(*Settings.model_fields))
@click.option("--simulate", is_flag=True, help="feed the hub with simulated devices")
def up(simulate: bool) -> None:
    """Run the whole hub in one process group, on embedded services unless configured.

    Settings: every SB_* variable (docs/configuration.md); SB_DATABASE_URL and SB_MQTT_URL unset
    mean an embedded PostgreSQL and broker under SB_DATA_DIR (default ./var)."""
    from hub.logs import configure_logging
    from shaobing.processes import run, run_up
    from simulator.fleet import SimConfig

    settings = _settings()
    configure_logging(settings.log_level.value)
    sim = SimConfig(smoke=20, readers=5, rate=5, alarms=True) if simulate else None
    with _startup_errors():
        run(run_up(settings, simulate=sim))


@main.command(
    epilog=settings_help(*_STORE, *_BROKER, "ingest_shared", "ingest_client_id", "secret")
)
@_HTTP_HOST
@_http_port(9101)
def ingest(http_host: str, http_port: int) -> None:
    """Run MQTT ingest and device health (needs SB_DATABASE_URL and SB_MQTT_URL).

    Several may run on one broker with SB_INGEST_SHARED=true, each with its own
    SB_INGEST_CLIENT_ID."""
    from hub.logs import configure_logging
    from shaobing.processes import run, run_ingest

    settings = _settings()
    _needs(settings, "ingest", mqtt=True)
    configure_logging(settings.log_level.value)
    with _startup_errors():
        run(run_ingest(settings, host=http_host, port=http_port))


@main.command(
    epilog=settings_help(*_STORE, "gb_listen", "gb_id", "gb_domain", "timezone", "secret")
)
@_HTTP_HOST
@_http_port(9104)
def gb28181(http_host: str, http_port: int) -> None:
    """Run the GB/T 28181 SIP server alone: cameras, NVRs and platforms register, keep alive,
    send their catalogs and alarms (needs SB_DATABASE_URL and SB_GB_LISTEN)."""
    from hub.logs import configure_logging
    from shaobing.processes import run, run_gb28181

    settings = _settings()
    _needs(settings, "gb28181", mqtt=False)
    if not settings.gb_listen:
        raise click.UsageError("set SB_GB_LISTEN=host:port (e.g. 0.0.0.0:5060)")
    configure_logging(settings.log_level.value)
    with _startup_errors():
        run(run_gb28181(settings, host=http_host, port=http_port))


@main.command(
    epilog=settings_help(
        *_STORE,
        "sla_emergency",
        "sla_major",
        "sla_routine",
        "rules_lateness",
        "summon_emergency",
        "summon_major",
        "summon_routine",
        "summon_rating_remind",
    )
)
@click.option(
    "--area",
    "area",
    default="",
    show_default=True,
    help="area code prefix of this partition (empty: every area); partitions must not overlap",
)
@_HTTP_HOST
@_http_port(9102)
def rules(area: str, http_host: str, http_port: int) -> None:
    """Run the rules engine and incident timers on the stored signal log (needs
    SB_DATABASE_URL)."""
    from hub.area_codes import check_scope
    from hub.logs import configure_logging
    from shaobing.processes import run, run_rules

    settings = _settings()
    _needs(settings, "rules", mqtt=False)
    try:
        check_scope(area)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--area") from None
    configure_logging(settings.log_level.value)
    with _startup_errors():
        run(run_rules(settings, area_prefix=area, host=http_host, port=http_port))


@main.command(epilog=settings_help(*_STORE, "secret", "public_url", "notify_give_up"))
@_HTTP_HOST
@_http_port(9103)
def notify(http_host: str, http_port: int) -> None:
    """Run notifications alone: incident changes to channels (webhooks, 企业微信, 钉钉, 飞书,
    email), repeats and unit dispatch messages (needs SB_DATABASE_URL). Several may run."""
    from hub.logs import configure_logging
    from shaobing.processes import run, run_notify

    settings = _settings()
    _needs(settings, "notify", mqtt=False)
    configure_logging(settings.log_level.value)
    with _startup_errors():
        run(run_notify(settings, host=http_host, port=http_port))


@main.command(
    epilog=settings_help(
        *_STORE,
        *_BROKER,
        "yolo_model",
        "fire_model",
        "pose_model",
        "vision_device",
        "vision_lease_s",
    )
)
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True)
@_HTTP_HOST
@_http_port(9110)
def vision(workers: int, http_host: str, http_port: int) -> None:
    """Run vision workers alone: they share the enabled cameras through leases (needs
    SB_DATABASE_URL and SB_MQTT_URL). Worker N's metrics are on the next ports up."""
    from hub.logs import configure_logging
    from shaobing.processes import run, run_vision
    from vision.processes import vision_available

    settings = _settings()
    if missing := vision_available():
        raise click.ClickException(missing)
    _needs(settings, "vision", mqtt=True)
    configure_logging(settings.log_level.value)
    with _startup_errors():
        run(run_vision(settings, workers=workers, host=http_host, port=http_port))


@main.command(epilog=settings_help(*_STORE, *_BROKER))
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
    from shaobing.runtime import database, embedded_broker_settings
    from simulator.fleet import SimConfig, Simulator, register

    settings = _settings()
    _say_data_dir(settings)
    configure_logging("WARNING")
    if not settings.mqtt_url:
        settings = embedded_broker_settings(settings) or settings
    if not settings.mqtt:
        raise click.ClickException("set SB_MQTT_URL, or start `shaobing up` first")
    cfg = SimConfig(
        smoke=smoke,
        readers=readers,
        rate=rate,
        alarms=alarms,
        bad=bad,
        duration=duration,
        count=count,
        area=area,
    )

    async def prepare() -> int:
        async with database(settings, create=False) as runtime:
            conn = await connect(runtime.database_url)
            async with conn:
                return await register(conn, cfg)

    with _startup_errors():
        created = asyncio.run(prepare())
    click.echo(
        f"simulate: {created} new device(s) registered in {area} (of {smoke + readers});"
        " publishing (Ctrl-C stops)",
        err=True,
    )
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


@main.command(
    epilog=settings_help(
        *_STORE,
        "api_bind",
        "secret",
        "admin_token",
        "onenet_token",
        "max_body_bytes",
        "max_import_bytes",
        "auth_failure_limit",
        "trusted_proxies",
    )
)
def api() -> None:
    """Run the HTTP API alone, stateless: any number behind a load balancer (needs
    SB_DATABASE_URL; listens on SB_API_BIND)."""
    from hub.logs import configure_logging
    from shaobing.processes import run, run_api

    settings = _settings()
    _needs(settings, "api", mqtt=False)
    configure_logging(settings.log_level.value)
    with _startup_errors():
        run(run_api(settings))


@main.command(epilog=settings_help())
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="write the document to this file (default: standard output)",
)
def openapi(out: Path | None) -> None:
    """Write the API's OpenAPI document, as the hub serves it at /openapi.json (keys sorted;
    needs no database): what the console's types and other clients are generated from."""
    from shaobing.openapi import document_text

    text = document_text()
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")


@main.command(epilog=settings_help(*_STORE))
def migrate() -> None:
    """Apply pending database migrations (safe to run again)."""
    from hub.db import connect
    from hub.logs import configure_logging
    from hub.migrations import migrate as run_migrations
    from shaobing.runtime import database

    settings = _settings()
    _say_data_dir(settings)
    configure_logging(settings.log_level.value)

    async def run() -> list[str]:
        async with database(settings, migrate_schema=False, create=False) as runtime:
            conn = await connect(runtime.database_url)
            async with conn:
                return await run_migrations(conn)

    with _startup_errors():
        applied = asyncio.run(run())
    click.echo(f"applied {len(applied)} migration(s)" + "".join(f"\n  {m}" for m in applied))


@main.group(epilog=settings_help(*_STORE))
def token() -> None:
    """API tokens."""


@token.command("create", epilog=settings_help(*_STORE))
@click.option(
    "--role",
    required=True,
    type=click.Choice(["admin", "integrator", "operator", "dispatcher", "viewer", "grid_worker"]),
)
@click.option("--area", "area", default="", help="area code prefix the token is limited to")
@click.option("--name", default=None, help="a label for the token (default: role@area)")
@click.option("--unit", "unit_id", default=None, help="a grid worker's response unit")
def token_create(role: str, area: str, name: str | None, unit_id: str | None) -> None:
    """Create a token and print it alone on stdout."""
    from api.tokens import Role, TokenIn, issue_token
    from hub.area_codes import check_scope
    from hub.db import connect
    from hub.logs import configure_logging
    from shaobing.runtime import database

    settings = _settings()
    _say_data_dir(settings)
    configure_logging("WARNING")
    try:
        check_scope(area)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--area") from None
    try:
        data = TokenIn(
            name=name or f"{role}@{area or 'all'}",
            role=Role(role),
            area_prefix=area,
            unit_id=unit_id,
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc).splitlines()[-1], param_hint="--unit") from None

    async def run() -> str:
        async with database(settings, create=False) as runtime:
            conn = await connect(runtime.database_url)
            async with conn:
                issued = await issue_token(conn, data)
                await conn.commit()
                return issued.token

    with _startup_errors():
        click.echo(asyncio.run(run()))


@token.command("list", epilog=settings_help(*_STORE))
def token_list() -> None:
    """List the tokens (never their secrets): id, role, area, name, state."""
    from api.tokens import list_tokens
    from hub.db import connect
    from hub.logs import configure_logging
    from shaobing.runtime import database

    settings = _settings()
    _say_data_dir(settings)
    configure_logging("WARNING")

    async def run() -> list[Any]:
        async with database(settings, create=False) as runtime:
            conn = await connect(runtime.database_url)
            async with conn:
                return await list_tokens(conn, scope="")

    with _startup_errors():
        tokens = asyncio.run(run())
    now = datetime.now(UTC)
    click.echo(f"{'id':>5}  {'role':<10}  {'area':<12}  {'state':<8}  {'created':<16}  name")
    for t in tokens:
        state = (
            "revoked"
            if t.revoked_at
            else "expired"
            if t.expires_at and t.expires_at <= now
            else "live"
        )
        click.echo(
            f"{t.id:>5}  {t.role.value:<10}  {t.area_prefix or '(all)':<12}  {state:<8}"
            f"  {t.created_at:%Y-%m-%d %H:%M}  {t.name}"
        )


@token.command("revoke", epilog=settings_help(*_STORE))
@click.argument("token_id", type=click.IntRange(1))
def token_revoke(token_id: int) -> None:
    """Revoke a token by its id (from `token list`); its live streams close at once."""
    from api.tokens import revoke_token
    from hub.db import connect
    from hub.logs import configure_logging
    from shaobing.runtime import database

    settings = _settings()
    _say_data_dir(settings)
    configure_logging("WARNING")

    async def run() -> None:
        async with database(settings, create=False) as runtime:
            conn = await connect(runtime.database_url)
            async with conn:
                await revoke_token(conn, token_id, scope="")
                await conn.commit()

    with _startup_errors():
        asyncio.run(run())
    click.echo(f"token {token_id} revoked")


@main.command("broker-config", epilog=settings_help(*_STORE, *_BROKER))
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path))
@click.option(
    "--hub-password",
    envvar="SB_HUB_MQTT_PASSWORD",
    default=None,
    help="password for the hub's own MQTT user (default: from SB_MQTT_URL, else generated)",
)
@click.option(
    "--owner",
    default=None,
    metavar="USER[:GROUP]",
    help="give the files to the broker's user, by name or as UID:GID (`mosquitto`; the "
    "eclipse-mosquitto image's is 1883:1883); they stay readable by their owner only "
    "(default: the user running this)",
)
def broker_config(out_dir: Path, hub_password: str | None, owner: str | None) -> None:
    """Write a Mosquitto password file and ACL from the registry."""
    from devices.broker_config import HUB_USER, OwnerError, parse_owner, write_broker_files
    from hub.db import connect
    from hub.logs import configure_logging
    from hub.secret import read_or_create
    from shaobing.runtime import database

    try:
        file_owner = parse_owner(owner) if owner is not None else None
    except OwnerError as exc:
        raise click.BadParameter(str(exc), param_hint="--owner") from exc
    settings = _settings()
    _say_data_dir(settings)
    configure_logging("WARNING")
    mqtt = settings.mqtt
    if hub_password is None and mqtt and mqtt.username == HUB_USER and mqtt.password:
        hub_password = mqtt.password
    if hub_password is None:
        hub_password = read_or_create(out_dir / "hub.password", nbytes=24)
        click.echo(f"hub MQTT password written to {out_dir / 'hub.password'}", err=True)

    async def run() -> int:
        async with database(settings, create=False) as runtime:
            conn = await connect(runtime.database_url)
            async with conn:
                files = await write_broker_files(
                    conn, out_dir, hub_password=hub_password, owner=file_owner
                )
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
