"""The GB/T 28181 server: registrations, keepalives, catalogs, alarms, over the SIP core.

Requests from a device are accepted only while it is registered, and only from its
registered IP (any port: devices open new TCP connections and some send from another UDP
port); only a digest-authenticated REGISTER moves a device to another IP. Keepalives are
answered at once and written in batches; alarms are stored before they are answered, so a
device whose alarm was not stored sends it again (and the copy is stored once).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import DictRow
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from devices import registry
from devices.cameras import catalog_camera_ids
from devices.registry import DeviceRef
from gb28181 import metrics, store
from gb28181.cascade.service import Cascade
from gb28181.catalog import Gathering
from gb28181.control import after_registration, run_commands
from gb28181.manscdp import BodyError, Manscdp, quick_keepalive, read_manscdp
from gb28181.messages import MessageHandler
from gb28181.registrar import Registered, Registrar
from gb28181.session import Outbound, Registration
from gb28181.sip import FloodLimits, IncomingRequest, SipStack, Timers
from gb28181.sip.quick import QuickMessage
from gb28181.sip.stack import DEFAULT_METHODS
from gb28181.sip.transport import Address
from hub import signal_log
from hub.db import open_pool
from hub.logs import get_logger
from hub.settings import Settings
from hub.supervisor import Probe
from ingest.device_state import mark_alive, mark_gone
from ingest.health import sweep_deadlines

log = get_logger(__name__)


@dataclass(frozen=True)
class GbConfig:
    database_url: str
    host: str
    port: int
    hub_id: str
    realm: str
    timezone: str
    seal_key: bytes
    timers: Timers = field(default_factory=Timers)
    flood: FloodLimits = field(default_factory=FloodLimits)
    failure_limit: int = 20
    flush_s: float = 0.5
    sweep_s: float = 5.0
    catalog_retries: int = 3
    catalog_backoff_s: float = 5.0
    subscribe_expires: int = 3600


class GbServer:
    """One per process; `run` until cancelled (components.add_gb28181)."""

    def __init__(self, config: GbConfig, pool: AsyncConnectionPool[AsyncConnection[DictRow]]):
        self.config = config
        self.pool = pool
        self.tz = ZoneInfo(config.timezone)
        # INVITE reaches the handler so that an upper platform's is refused with a reason.
        self.stack = SipStack(
            config.host,
            config.port,
            self.handle,
            timers=config.timers,
            flood=config.flood,
            on_drop=self._on_drop,
            methods=DEFAULT_METHODS | {"INVITE"},
            quick=self._quick_keepalive,
        )
        self.out = Outbound(self.stack, config.hub_id, config.realm)
        self.registrar = Registrar(
            config.realm, self.tz, self._password, failure_limit=config.failure_limit
        )
        self.regs: dict[str, Registration] = {}
        self.heard: dict[str, datetime] = {}
        self.gatherings: dict[tuple[str, str], tuple[Gathering, asyncio.Event]] = {}
        self.awaiting: dict[tuple[str, str], asyncio.Future[Manscdp]] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self._background: set[asyncio.Task[None]] = set()
        self.messages = MessageHandler(self)
        self.cascade = Cascade(self)  # the hub as a lower platform (uplinks)

    def _on_drop(self, reason: str, source: Address) -> None:
        metrics.dropped(reason)

    async def _password(self, device_id: str) -> tuple[DeviceRef, str] | None:
        async with self.pool.connection() as conn:
            return await registry.sip_password(conn, device_id, self.config.seal_key)

    def spawn(self, coro: Coroutine[Any, Any, None], key: str | None = None) -> None:
        """Run in the background; with `key`, replacing the task of that key."""
        task = asyncio.create_task(coro)
        if key is not None:
            old = self.tasks.pop(key, None)
            if old is not None:
                old.cancel()
            self.tasks[key] = task
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        await self._load_registrations()
        await self.stack.start()
        log.info(
            "gb28181 listening",
            udp=str(self.stack.udp_address),
            tcp=str(self.stack.tcp_address),
            realm=self.config.realm,
        )

    async def stop(self) -> None:
        tasks = list(self._background)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.stack.stop()

    async def _load_registrations(self) -> None:
        now = datetime.now(UTC)
        async with self.pool.connection() as conn:
            stored = await store.live_registrations(conn, now)
            refs = {
                r.id: r for r in await registry.device_refs(conn, [s.device_id for s in stored])
            }
            for s in stored:
                if s.device_id in refs:
                    expires = int((s.expires_at - s.registered_at).total_seconds())
                    where = Address("tcp" if s.transport == "tcp" else "udp", s.host, s.port)
                    reg = Registration(
                        refs[s.device_id], where, s.expires_at, expires, s.gb_version
                    )
                    self.regs[s.device_id] = reg
                    await self.load_channels(conn, reg)

    async def load_channels(self, conn: AsyncConnection[DictRow], reg: Registration) -> None:
        ids = await catalog_camera_ids(conn, reg.device.id)
        reg.channels = await registry.device_refs(conn, ids) if ids else []

    # --- incoming ----------------------------------------------------------------------------

    async def handle(self, inc: IncomingRequest) -> None:
        if await self.cascade.handle(inc):
            return
        method = inc.request.method
        if method == "REGISTER":
            done = await self.registrar.handle(inc)
            if done is not None:
                await self._registered(done)
        elif method in ("MESSAGE", "NOTIFY"):
            await self._from_device(inc)
        elif method == "OPTIONS":
            await inc.respond(200)
        else:
            metrics.dropped("method_not_handled")
            await inc.respond(405, headers=[("Allow", "REGISTER, MESSAGE, NOTIFY, OPTIONS")])

    def _quick_keepalive(self, msg: QuickMessage, source: Address) -> bool:
        """The stack's quick path: a plain Keepalive from a registered device at its
        registered address is taken here and answered 200 at once. Anything else, or any
        doubt, goes the full way (`handle`), which refuses and counts as it always does."""
        if self.cascade.owns(msg.from_user, msg.to_user) or quick_keepalive(msg.body) is None:
            return False
        now = datetime.now(UTC)
        reg = self._sender(msg.from_user, source, now)
        if isinstance(reg, str):
            return False
        self.messages.keepalive(reg, now)
        return True

    def _sender(self, device_id: str, source: Address, now: datetime) -> Registration | str:
        """The sender's live registration, or why its request is refused: not registered, or
        not from its registered IP."""
        reg = self.regs.get(device_id)
        if reg is None or not reg.live(now):
            return "not_registered"
        if source.host != reg.address.host:
            return "wrong_address"
        if source.transport == "tcp" and source != reg.address:
            reg.address = source  # its newest connection is where requests go
        return reg

    async def _from_device(self, inc: IncomingRequest) -> None:
        now = datetime.now(UTC)
        reg = self._sender(inc.request.from_.uri.user or "", inc.source, now)
        if isinstance(reg, str):
            metrics.dropped(reg)
            await inc.respond(403, "Not Registered" if reg == "not_registered" else "Wrong Address")
            return
        try:
            msg = read_manscdp(inc.request.body)
        except BodyError as exc:
            metrics.dropped(exc.reason)
            await inc.respond(400, "Bad Body")
            return
        await self.messages.handle(inc, reg, msg, now)

    async def _registered(self, done: Registered) -> None:
        device, now = done.device, datetime.now(UTC)
        if done.expires == 0:
            await self._unregistered(device.id, now)
            return
        reg, refresh = self._session(done, now)
        stored = store.StoredRegistration(
            device.id,
            done.address.transport,
            done.address.host,
            done.address.port,
            done.gb_version,
            reg.expires_at,
            now,
        )
        async with self.pool.connection() as conn, conn.transaction():
            await store.save_registration(conn, stored)
            signals = await mark_alive(conn, [device], now)
            await signal_log.append(conn, signals)
        if not refresh:  # a new session: catalog, DeviceInfo, subscriptions, SetGuard
            self.spawn(after_registration(self, reg), key=device.id)

    def _session(self, done: Registered, now: datetime) -> tuple[Registration, bool]:
        """The device's registration after this REGISTER, and whether it only refreshed a
        live one (same address, its session still running)."""
        old = self.regs.get(done.device.id)
        running = self.tasks.get(done.device.id)
        expires_at = now + timedelta(seconds=done.expires)
        if (
            old is not None
            and old.live(now)
            and old.address == done.address
            and running is not None
            and not running.done()
        ):
            old.device, old.gb_version = done.device, done.gb_version
            old.expires_at, old.expires_s = expires_at, done.expires
            return old, True
        channels = old.channels if old else []
        reg = Registration(
            done.device, done.address, expires_at, done.expires, done.gb_version, channels
        )
        self.regs[done.device.id] = reg
        return reg, False

    async def _unregistered(self, device_id: str, now: datetime) -> None:
        """`Expires: 0`: no longer registered, still watched (offline after the grace)."""
        leaving = self.regs.get(device_id)
        if leaving is not None:
            leaving.expires_at = now
        async with self.pool.connection() as conn, conn.transaction():
            await store.drop_registration(conn, device_id)
            await mark_gone(conn, [device_id], now)
        task = self.tasks.pop(device_id, None)
        if task is not None:
            task.cancel()

    # --- background --------------------------------------------------------------------------

    async def flush_heard(self) -> None:
        """Write the keepalives heard since the last flush: devices and their channels."""
        if not self.heard:
            return
        heard, self.heard = self.heard, {}
        refs: list[DeviceRef] = []
        for device_id in heard:
            reg = self.regs.get(device_id)
            if reg is not None:
                refs += [reg.device, *reg.channels]
        if not refs:
            return
        async with self.pool.connection() as conn, conn.transaction():
            signals = await mark_alive(conn, refs, max(heard.values()))
            await signal_log.append(conn, signals)

    async def sweep(self) -> None:
        """Devices silent past their deadline: `device_offline`. Their channels go offline
        with them, without signals of their own (one incident for an NVR, not one a channel)."""
        now = datetime.now(UTC)
        watched = {reg.device.id: (reg.device, reg.deadline()) for reg in self.regs.values()}
        async with self.pool.connection() as conn:
            async with conn.transaction():
                await store.prune_alarms_seen(conn, now)
                gone = await sweep_deadlines(conn, watched, now)
            channels = [c.id for s in gone for c in self.regs[s.source_id].channels]
            if channels:
                async with conn.transaction():
                    await mark_gone(conn, channels, now)

    async def every(self, seconds: float, job: Callable[[], Awaitable[None]]) -> None:
        """Run `job` every `seconds`; a failure (the database away) is logged and retried."""
        while True:
            await asyncio.sleep(seconds)
            try:
                await job()
            except (psycopg.Error, PoolTimeout) as exc:
                log.warning("gb28181 background job failed", job=job.__name__, error=str(exc))


def config_from(settings: Settings, seal_key: bytes, database_url: str) -> GbConfig:
    """The server's configuration from the hub's settings (SB_GB_LISTEN must be set)."""
    assert settings.gb_listen, "SB_GB_LISTEN is unset: the GB/T 28181 server is off"
    host, _, port = settings.gb_listen.rpartition(":")
    return GbConfig(
        database_url=database_url,
        host=host.strip("[]"),
        port=int(port),
        hub_id=settings.gb_id,
        realm=settings.gb_realm,
        timezone=settings.timezone,
        seal_key=seal_key,
        failure_limit=settings.auth_failure_limit,
    )


async def run_gb28181(config: GbConfig, probe: Probe) -> None:
    """The GB/T 28181 server until cancelled (a supervisor component)."""
    pool = await open_pool(config.database_url, max_size=8)
    try:
        server = GbServer(config, pool)
        await server.start()
        probe.ready()
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(server.every(config.flush_s, server.flush_heard))
                group.create_task(server.every(config.sweep_s, server.sweep))
                group.create_task(run_commands(server, probe))
                group.create_task(server.cascade.run())
        finally:
            await server.stop()
    finally:
        await pool.close()
