"""The cascade inside the GB server: one `UplinkSession` per enabled uplink on the server's own
socket, the upper platforms' requests (those addressed to an uplink's local_id from its upper),
catalog subscriptions, and the alarm forwarder."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import psycopg
from psycopg_pool import PoolTimeout

from devices.registry import REGISTRY_CHANNEL
from gb28181.cascade import forwarder, store
from gb28181.cascade.catalog import Item, pages, response_body, scope_items
from gb28181.cascade.session import MANSCDP_TYPE, UplinkSession
from gb28181.cascade.store import UplinkConfig
from gb28181.manscdp import BodyError, Manscdp, read_manscdp
from gb28181.sip import IncomingRequest, SipStack, SipTimeout, SipTransportError, build_request
from hub.listen import wakeups
from hub.logs import get_logger
from hub.supervisor import Probe

if TYPE_CHECKING:
    from gb28181.server import GbServer

log = get_logger(__name__)

# What an upper platform is told when it asks for video: the hub forwards no media yet.
INVITE_STATUS = 488
INVITE_REASON = "Media Not Forwarded"
INVITE_WARNING = '399 shaobing "this lower platform does not forward media to upper platforms yet"'
MAX_SUBSCRIBE_S = 86_400


@dataclass
class Subscription:
    """An upper's SUBSCRIBE Catalog: its dialog, when it lapses, what it was last told."""

    call_id: str
    theirs: str  # their From (with tag): our NOTIFY's To
    ours: str  # their To (our id), given our tag: our NOTIFY's From
    expires_at: datetime
    seen: dict[str, Item] = field(default_factory=dict)
    cseq: int = 1


class Cascade:
    def __init__(self, server: GbServer) -> None:
        self.server = server
        self.sessions: dict[str, UplinkSession] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.subscriptions: dict[str, Subscription] = {}
        self.poke = asyncio.Event()
        self.backoff_s = 1.0
        self.poll_s = 2.0

    @property
    def stack(self) -> SipStack:
        return self.server.stack

    # --- uplinks -----------------------------------------------------------------------------

    async def reload(self) -> None:
        async with self.server.pool.connection() as conn:
            configs = {
                c.id: c for c in await store.enabled_uplinks(conn, self.server.config.seal_key)
            }
        for uplink_id in list(self.sessions):
            session = self.sessions[uplink_id]
            if configs.get(uplink_id) != session.config:
                self._stop(uplink_id)
                if uplink_id not in configs and session.registered:
                    # Removed or disabled: tell the upper (a changed one registers anew).
                    self.server.spawn(_unregister(session))
        for uplink_id, config in configs.items():
            if uplink_id not in self.sessions:
                self._start(config)

    def _start(self, config: UplinkConfig) -> None:
        session = UplinkSession(
            config, self.stack, self.server.tz, self._changed, backoff_s=self.backoff_s
        )
        self.sessions[config.id] = session
        self.tasks[config.id] = asyncio.create_task(session.run())

    def _stop(self, uplink_id: str) -> None:
        self.sessions.pop(uplink_id, None)
        self.subscriptions.pop(uplink_id, None)
        task = self.tasks.pop(uplink_id, None)
        if task is not None:
            task.cancel()

    async def _changed(self, session: UplinkSession) -> None:
        if self.sessions.get(session.config.id) is not session:
            return
        try:
            async with self.server.pool.connection() as conn:
                await store.save_status(
                    conn,
                    session.config.id,
                    registered=session.registered,
                    last_error=session.last_error,
                    registered_at=session.registered_at,
                    last_keepalive=session.last_keepalive,
                    clock_skew_ms=session.skew_ms,
                )
        except (psycopg.Error, PoolTimeout) as exc:
            log.warning("gb uplink status not saved", uplink=session.config.id, error=str(exc))
        if session.registered:
            self.poke.set()  # deliveries held while it was away

    async def run(self, probe: Probe | None = None) -> None:
        """Until cancelled: the uplinks, the forwarder and the catalog notifier."""
        try:
            await self.reload()
            async with asyncio.TaskGroup() as group:
                group.create_task(self._follow(probe))
                group.create_task(self._forward())
                group.create_task(self._notify_catalogs())
        finally:
            for uplink_id in list(self.sessions):
                self._stop(uplink_id)

    async def _follow(self, probe: Probe | None) -> None:
        channels = [store.UPLINKS_CHANNEL, store.OUTBOX_CHANNEL, REGISTRY_CHANNEL]
        async for wakeup in wakeups(
            self.server.config.database_url, channels, idle=1.0, probe=probe
        ):
            # Right after LISTEN too: a change made before it was heard of is read now.
            if wakeup.reconnected or store.UPLINKS_CHANNEL in wakeup.channels:
                await _guarded(self.reload())
            self.poke.set()

    async def _forward(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.poke.wait(), 1.0)
            self.poke.clear()
            sessions = list(self.sessions.values())
            await _guarded(self._forward_once(sessions))

    async def _forward_once(self, sessions: list[UplinkSession]) -> None:
        while await forwarder.fan_out(self.server.pool, sessions, self.server.tz):
            pass
        by_id = {s.config.id: s for s in sessions}
        while await forwarder.send_due(self.server.pool, by_id) == forwarder.BATCH:
            pass

    # --- requests from upper platforms -------------------------------------------------------

    def session_for(self, inc: IncomingRequest) -> UplinkSession | None:
        return self._session(inc.request.from_.uri.user or "", inc.request.to.uri.user or "")

    def owns(self, from_user: str, to_user: str) -> bool:
        """Whether a request from `from_user` to `to_user` is an upper platform's."""
        return bool(self.sessions) and self._session(from_user, to_user) is not None

    def _session(self, from_user: str, to_user: str) -> UplinkSession | None:
        for session in self.sessions.values():
            if session.config.local_id == to_user and session.config.upper_id == from_user:
                return session
        return None

    async def handle(self, inc: IncomingRequest) -> bool:
        """Answer a request of an upper platform; False: not one (the server's own)."""
        session = self.session_for(inc)
        if session is None:
            return False
        if inc.source.host != session.address.host:
            await inc.respond(403, "Wrong Address")
            return True
        method = inc.request.method
        if method == "INVITE":
            await inc.respond(INVITE_STATUS, INVITE_REASON, [("Warning", INVITE_WARNING)])
        elif method == "MESSAGE":
            await self._message(inc, session)
        elif method == "SUBSCRIBE":
            await self._subscribe(inc, session)
        else:
            await inc.respond(200)
        return True

    async def _message(self, inc: IncomingRequest, session: UplinkSession) -> None:
        try:
            msg = read_manscdp(inc.request.body)
        except BodyError:
            await inc.respond(400, "Bad Body")
            return
        await inc.respond(200)
        if msg.root == "Query" and msg.cmd_type == "Catalog":
            self.server.spawn(self.send_catalog(session, msg))
        elif msg.root == "Query" and msg.cmd_type in ("DeviceInfo", "DeviceStatus"):
            self.server.spawn(self._answer_device(session, msg))
        elif msg.root == "Control":
            self.server.spawn(self._answer(session, msg.cmd_type, msg.sn, "<Result>OK</Result>"))

    async def send_catalog(self, session: UplinkSession, msg: Manscdp) -> None:
        """The scope's catalog in pages, each MESSAGE answered before the next is sent."""
        async with self.server.pool.connection() as conn:
            items = await scope_items(conn, session.config.local_id, session.config.area_prefix)
        for page in pages(items):
            body = response_body("Catalog", msg.sn, session.config.local_id, len(items), page)
            answer = await session.message(body)
            if answer is None:
                log.warning("gb uplink catalog page unanswered", uplink=session.config.id)
                return

    async def _answer_device(self, session: UplinkSession, msg: Manscdp) -> None:
        if msg.cmd_type == "DeviceInfo":
            async with self.server.pool.connection() as conn:
                items = await scope_items(conn, session.config.local_id, session.config.area_prefix)
            extra = (
                "<Result>OK</Result>\r\n<DeviceName>哨兵</DeviceName>\r\n"
                "<Manufacturer>Shaobing</Manufacturer>\r\n<Model>Shaobing hub</Model>\r\n"
                f"<Firmware>0.1.0</Firmware>\r\n<Channel>{len(items)}</Channel>"
            )
        else:
            now = session.registered_at or datetime.now(UTC)
            extra = (
                "<Result>OK</Result>\r\n<Online>ONLINE</Online>\r\n<Status>OK</Status>\r\n"
                f"<Encode>ON</Encode>\r\n<Record>OFF</Record>\r\n<DeviceTime>"
                f"{(now + session.skew).astimezone(self.server.tz).strftime('%Y-%m-%dT%H:%M:%S')}"
                '</DeviceTime>\r\n<Alarmstatus Num="0">\r\n</Alarmstatus>'
            )
        await self._answer(session, msg.cmd_type, msg.sn, extra)

    async def _answer(self, session: UplinkSession, cmd: str, sn: str, extra: str) -> None:
        body = (
            f'<?xml version="1.0" encoding="GB2312"?>\r\n<Response>\r\n<CmdType>{cmd}</CmdType>'
            f"\r\n<SN>{sn}</SN>\r\n<DeviceID>{session.config.local_id}</DeviceID>\r\n{extra}\r\n"
            "</Response>\r\n"
        )
        await session.message(body.encode("gb18030"))

    async def _subscribe(self, inc: IncomingRequest, session: UplinkSession) -> None:
        event = (inc.request.headers.get("Event") or "").split(";")[0].strip().lower()
        text = (inc.request.headers.get("Expires") or "3600").strip()
        expires = min(int(text), MAX_SUBSCRIBE_S) if text.isdigit() and len(text) < 7 else 3600
        if event != "catalog":
            await inc.respond(200, headers=[("Expires", str(expires))])
            return  # alarms (presence) are forwarded to every registered upper anyway
        if expires == 0:
            self.subscriptions.pop(session.config.id, None)
            await inc.respond(200, headers=[("Expires", "0")])
            return
        # What the upper has now is read before it is answered: a change it makes right after
        # our 200 is after this, so the next poll tells it.
        async with self.server.pool.connection() as conn:
            items = await scope_items(conn, session.config.local_id, session.config.area_prefix)
        response = await inc.respond(200, headers=[("Expires", str(expires))])
        sub = Subscription(
            call_id=inc.request.call_id,
            theirs=inc.request.headers.get("From") or "",
            ours=response.headers.get("To") or "",
            expires_at=datetime.now(UTC) + timedelta(seconds=expires),
        )
        sub.seen = {item.id: item for item in items}
        self.subscriptions[session.config.id] = sub

    # --- catalog changes ---------------------------------------------------------------------

    async def _notify_catalogs(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            for uplink_id, sub in list(self.subscriptions.items()):
                session = self.sessions.get(uplink_id)
                if session is None or sub.expires_at <= datetime.now(UTC):
                    self.subscriptions.pop(uplink_id, None)
                    continue
                if session.registered:
                    await _guarded(self._notify_changes(session, sub))

    async def _notify_changes(self, session: UplinkSession, sub: Subscription) -> None:
        async with self.server.pool.connection() as conn:
            items = await scope_items(conn, session.config.local_id, session.config.area_prefix)
        now = {item.id: item for item in items}
        changes = catalog_changes(sub.seen, now)
        if not changes:
            return
        listed = "".join(item.xml(event) for item, event in changes)
        body = (
            f'<?xml version="1.0" encoding="GB2312"?>\r\n<Notify>\r\n<CmdType>Catalog</CmdType>'
            f"\r\n<SN>{session.next_sn()}</SN>\r\n<DeviceID>{session.config.local_id}</DeviceID>"
            f'\r\n<SumNum>{len(changes)}</SumNum>\r\n<DeviceList Num="{len(changes)}">\r\n'
            f"{listed}</DeviceList>\r\n</Notify>\r\n"
        ).encode("gb18030")
        sub.cseq += 1
        left = max(int((sub.expires_at - datetime.now(UTC)).total_seconds()), 0)
        request = build_request(
            "NOTIFY",
            f"sip:{session.config.upper_id}@{session.config.host}:{session.config.port}",
            from_=sub.ours,
            to=sub.theirs,
            call_id=sub.call_id,
            cseq=sub.cseq,
            headers=[("Event", "Catalog"), ("Subscription-State", f"active;expires={left}")],
            body=body,
            content_type=MANSCDP_TYPE,
        )
        try:
            answer = await self.stack.request(request, session.address)
        except (SipTimeout, SipTransportError):
            return  # told again at the next poll
        if answer.status < 300:
            sub.seen = now


async def _unregister(session: UplinkSession) -> None:
    session.registered = False
    await session.register(expires=0)


def catalog_changes(before: dict[str, Item], after: dict[str, Item]) -> list[tuple[Item, str]]:
    """What a catalog NOTIFY says: ADD, DEL, ON, OFF, UPDATE per item."""
    changes: list[tuple[Item, str]] = []
    for item_id, item in after.items():
        old = before.get(item_id)
        if old is None:
            changes.append((item, "ADD"))
        elif old.status != item.status:
            changes.append((item, "ON" if item.status == "ON" else "OFF"))
        elif old != item:
            changes.append((item, "UPDATE"))
    changes += [(item, "DEL") for item_id, item in before.items() if item_id not in after]
    return changes


async def _guarded(job: object) -> None:
    """Await `job`; a database or SIP failure is logged and left to the next round."""
    assert asyncio.iscoroutine(job)
    try:
        await job
    except (psycopg.Error, PoolTimeout, SipTransportError) as exc:
        log.warning("gb cascade job failed", error=str(exc))
