"""What the hub asks of devices: the catalog after each registration (first), DeviceInfo,
the alarm and catalog subscriptions (renewed before they lapse), SetGuard, and the commands
of the commands API."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from devices.commands import (
    COMMANDS_CHANNEL,
    Command,
    CommandResult,
    expire_unanswered,
    mark_sent,
    record_results,
    take_pending,
)
from devices.registry import GB_CATALOG_CHANNEL
from gb28181.catalog import Gathering
from gb28181.manscdp import Manscdp
from gb28181.session import ALARM_QUERY, CONTROL, Registration
from hub.backoff import Backoff
from hub.listen import wakeups
from hub.logs import get_logger
from hub.supervisor import Probe

if TYPE_CHECKING:
    from gb28181.server import GbServer

log = get_logger(__name__)


async def after_registration(server: GbServer, reg: Registration) -> None:
    """Catalog first, then DeviceInfo, the subscriptions and SetGuard; then keep the
    subscriptions renewed (this task is replaced by the device's next registration)."""
    gathering = await query_catalog(server, reg)
    if gathering is not None:  # its answers come before the hub asks anything else
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(gathering[1].wait(), server.config.timers.f)
    await server.out.manscdp(reg, "Query", "DeviceInfo")
    if reg.wants_guard():
        await server.out.manscdp(reg, "Control", "DeviceControl", CONTROL["set_guard"][2])
    renew = server.config.subscribe_expires
    async with asyncio.TaskGroup() as group:
        if gathering is not None and not gathering[0].complete:
            group.create_task(finish_catalog(server, reg, *gathering))
        while True:
            await server.out.subscribe(reg, "presence", "Alarm", ALARM_QUERY, renew)
            await server.out.subscribe(reg, "Catalog", "Catalog", "", renew)
            await asyncio.sleep(renew * 0.8)


async def query_catalog(
    server: GbServer, reg: Registration
) -> tuple[Gathering, asyncio.Event, str] | None:
    """Send Query Catalog; the gathering its answers fill (None: the device refused it)."""
    sn = server.out.next_sn()
    gathering, done = Gathering(str(sn)), asyncio.Event()
    key = (reg.device.id, str(sn))
    server.gatherings[key] = (gathering, done)
    response, _ = await server.out.manscdp(reg, "Query", "Catalog", sn=sn)
    if response is None or response.status >= 300:
        server.gatherings.pop(key, None)
        return None
    return gathering, done, str(sn)


async def finish_catalog(
    server: GbServer, reg: Registration, gathering: Gathering, done: asyncio.Event, sn: str
) -> None:
    """Wait for the answers until Timer F; incomplete then: keep what came, ask again with
    backoff."""
    first, retries = server.config.catalog_backoff_s, server.config.catalog_retries
    backoff = Backoff(first_s=first, max_s=first * 2**retries)
    for attempt in range(retries + 1):
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), server.config.timers.f)
        server.gatherings.pop((reg.device.id, sn), None)
        if gathering.complete:
            return
        await server.messages.save_catalog(reg, gathering, datetime.now(UTC))
        if attempt == retries:
            log.warning(
                "gb catalog incomplete",
                device=reg.device.id,
                got=len(gathering.channels),
                total=gathering.total,
            )
            return
        await asyncio.sleep(backoff.delay(attempt + 1))
        again = await query_catalog(server, reg)
        if again is None:
            continue
        gathering, done, sn = again


async def refresh_catalog(server: GbServer, reg: Registration) -> None:
    """`POST /devices/{id}/catalog`: query again, gathered and retried as after registering."""
    gathering = await query_catalog(server, reg)
    if gathering is not None:
        await finish_catalog(server, reg, *gathering)


# --- commands -------------------------------------------------------------------------------


async def run_commands(server: GbServer, probe: Probe | None = None) -> None:
    """Send the gb28181 devices' pending commands; expire those unanswered; query the catalogs
    the API asks for."""
    channels = [COMMANDS_CHANNEL, GB_CATALOG_CHANNEL]
    async for wakeup in wakeups(server.config.database_url, channels, idle=1.0, probe=probe):
        for channel, device_id in wakeup.notes:
            reg = server.regs.get(device_id)
            if channel == GB_CATALOG_CHANNEL and reg is not None:
                server.spawn(refresh_catalog(server, reg))
        now = datetime.now(UTC)
        async with server.pool.connection() as conn, conn.transaction():
            commands = await take_pending(conn, now, gb28181=True)
            live = [c for c in commands if _live(server, c, now)]
            await mark_sent(conn, [c.id for c in live], now)
            dead = [
                CommandResult(c.device_id, c.id, False, "the device is not registered", now)
                for c in commands
                if c not in live
            ]
            await record_results(conn, dead)
            await expire_unanswered(conn, now)
        for command in live:
            server.spawn(carry_out(server, server.regs[command.device_id], command))


def _live(server: GbServer, command: Command, now: datetime) -> bool:
    reg = server.regs.get(command.device_id)
    return reg is not None and reg.live(now)


async def carry_out(server: GbServer, reg: Registration, command: Command) -> None:
    """Send one command; acked or failed by the device's SIP answer and its Response."""
    root, cmd_type, extra = CONTROL[command.command.value]
    sn = server.out.next_sn()
    key = (reg.device.id, str(sn))
    answer: asyncio.Future[Manscdp] = asyncio.get_running_loop().create_future()
    server.awaiting[key] = answer
    try:
        response, _ = await server.out.manscdp(reg, root, cmd_type, extra, sn=sn)
        if response is None or response.status >= 300:
            said = f"the device answered {response.status}" if response else "no answer"
            await _result(server, command, False, said)
            return
        if command.command.value == "reboot":  # a rebooting device sends no Response
            await _result(server, command, True, "rebooting")
            return
        left = (command.expires_at - datetime.now(UTC)).total_seconds()
        msg = await asyncio.wait_for(answer, max(left, 0.1))
        result = (msg.element.get("Result") or "OK").upper()
        await _result(server, command, result == "OK", _detail(msg))
    except TimeoutError:
        pass  # expired by the sweep
    finally:
        server.awaiting.pop(key, None)


def _detail(msg: Manscdp) -> str:
    parts = [
        f"{tag}={value}"
        for tag in (
            "Result",
            "Online",
            "Status",
            "Manufacturer",
            "Model",
            "Firmware",
            "Encode",
            "Record",
        )
        if (value := msg.element.get(tag))
    ]
    return ", ".join(parts)[:500] or msg.cmd_type


async def _result(server: GbServer, command: Command, ok: bool, detail: str) -> None:
    async with server.pool.connection() as conn, conn.transaction():
        await record_results(
            conn, [CommandResult(command.device_id, command.id, ok, detail, datetime.now(UTC))]
        )
