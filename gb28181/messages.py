"""MANSCDP messages from registered devices: keepalives, alarms, catalogs, answers."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from psycopg import AsyncConnection
from psycopg.rows import DictRow

from devices import registry
from devices.cameras import CatalogCamera, drop_catalog_cameras, upsert_catalog_cameras
from devices.registry import DeviceRef
from gb28181 import metrics, store
from gb28181.alarms import Alarm, read_alarm
from gb28181.catalog import Channel, Gathering, read_items
from gb28181.manscdp import Manscdp
from gb28181.session import Registration
from gb28181.sip import IncomingRequest
from hub import signal_log
from hub.contracts import Signal

if TYPE_CHECKING:
    from gb28181.server import GbServer

_GONE = frozenset({"DEL"})


class MessageHandler:
    def __init__(self, server: GbServer) -> None:
        self.server = server

    async def handle(
        self, inc: IncomingRequest, reg: Registration, msg: Manscdp, now: datetime
    ) -> None:
        key = (msg.root, msg.cmd_type)
        if key == ("Notify", "Keepalive"):
            self.keepalive(reg, now)
            await inc.respond(200)
        elif msg.cmd_type == "Alarm" and msg.root == "Notify":
            await self.alarm(inc, reg, msg, now)
        elif msg.cmd_type == "Catalog" and msg.root in ("Response", "Notify"):
            await inc.respond(200)
            await self.catalog(reg, msg, now)
        elif msg.root == "Response":
            await inc.respond(200)
            await self.answer(reg, msg)
        else:
            metrics.dropped("unhandled_cmd")
            await inc.respond(200)

    def keepalive(self, reg: Registration, now: datetime) -> None:
        """Heard: written with the others at the next flush (GbServer.flush_heard)."""
        self.server.heard[reg.device.id] = now
        metrics.KEEPALIVES.inc()

    # --- alarms ------------------------------------------------------------------------------

    async def alarm(
        self, inc: IncomingRequest, reg: Registration, msg: Manscdp, now: datetime
    ) -> None:
        try:
            alarm = read_alarm(msg.element, reg.device.id, msg.sn, self.server.tz, now)
        except ValueError:
            metrics.ALARMS.labels(kind="", outcome="unmapped").inc()
            await inc.respond(200)
            return
        source = await self._alarm_source(reg, alarm.source_id)
        if source is None:
            metrics.ALARMS.labels(kind=alarm.kind, outcome="foreign_channel").inc()
            await inc.respond(403, "Not Your Channel")
            return
        async with self.server.pool.connection() as conn, conn.transaction():
            fresh = await store.first_sighting(conn, reg.device.id, alarm.sn, alarm.alarm_time)
            if fresh:
                await signal_log.append(conn, [_signal(alarm, source)])
        metrics.ALARMS.labels(kind=alarm.kind, outcome="stored" if fresh else "duplicate").inc()
        await inc.respond(200)
        # The device waits for the platform's Response (GB/T 28181 9.4) before its next alarm.
        self.server.spawn(self._acknowledge(reg, msg))

    async def _alarm_source(self, reg: Registration, source_id: str) -> DeviceRef | None:
        """The device, one of its channels, or (a channel the catalog has not listed yet) the
        device itself; None for another device's channel."""
        if source_id == reg.device.id:
            return reg.device
        for channel in reg.channels:
            if channel.id == source_id:
                return channel
        async with self.server.pool.connection() as conn:
            found = await registry.device_refs(conn, [source_id])
        if found and found[0].tags.get("gb_device") != reg.device.id:
            return None
        return found[0] if found else reg.device

    async def _acknowledge(self, reg: Registration, msg: Manscdp) -> None:
        await self.server.out.manscdp(
            reg,
            "Response",
            "Alarm",
            "<Result>OK</Result>\r\n",
            target=msg.device_id,
            sn=int(msg.sn) if msg.sn.isdigit() and len(msg.sn) < 10 else None,
        )

    # --- catalog -----------------------------------------------------------------------------

    async def catalog(self, reg: Registration, msg: Manscdp, now: datetime) -> None:
        if msg.root == "Notify":
            await self.catalog_changes(reg, read_items(msg.element))
            return
        pending = self.server.gatherings.get((reg.device.id, msg.sn))
        # Late or unasked, what it says is still the device's catalog: saved as it comes.
        gathering, done = pending if pending is not None else (Gathering(msg.sn), None)
        complete = gathering.add(msg.element)
        metrics.CATALOG_ITEMS.inc(len(read_items(msg.element)))
        if complete or done is None:
            await self.save_catalog(reg, gathering, now)
            if done is not None:
                self.server.gatherings.pop((reg.device.id, msg.sn), None)
                done.set()

    async def save_catalog(self, reg: Registration, gathering: Gathering, now: datetime) -> None:
        channels = list(gathering.channels.values())
        async with self.server.pool.connection() as conn, conn.transaction():
            await self._upsert(conn, reg, channels)
            await store.save_catalog_progress(
                conn, reg.device.id, gathering.total, len(channels), now
            )
            await self.server.load_channels(conn, reg)

    async def catalog_changes(self, reg: Registration, items: list[Channel]) -> None:
        """A catalog Notify: ADD, UPDATE, ON, OFF, VLOST, DEFECT change; DEL removes."""
        gone = [c for c in items if c.fields.get("event", "").upper() in _GONE]
        kept = [c for c in items if c not in gone]
        for channel in kept:
            event = channel.fields.get("event", "").upper()
            if event in ("ON", "OFF", "VLOST", "DEFECT"):
                channel.fields["status"] = event
        async with self.server.pool.connection() as conn, conn.transaction():
            await self._upsert(conn, reg, kept)
            if gone:
                ids = [c.id for c in gone]
                await drop_catalog_cameras(conn, reg.device.id, ids)
                await store.drop_alarm_inputs(conn, reg.device.id, ids)
            await self.server.load_channels(conn, reg)

    async def _upsert(
        self, conn: AsyncConnection[DictRow], reg: Registration, channels: list[Channel]
    ) -> None:
        video = [
            CatalogCamera(c.id, c.tags(reg.device.id), c.lat, c.lon)
            for c in channels
            if c.is_video and c.id != reg.device.id
        ]
        await upsert_catalog_cameras(conn, reg.device, video)
        inputs = [c for c in channels if c.is_alarm_input]
        await store.save_alarm_inputs(conn, reg.device.id, inputs)

    # --- answers to the hub's queries and controls ------------------------------------------

    async def answer(self, reg: Registration, msg: Manscdp) -> None:
        waiting = self.server.awaiting.pop((reg.device.id, msg.sn), None)
        if waiting is not None and not waiting.done():
            waiting.set_result(msg)
        if msg.cmd_type == "DeviceInfo":
            await self.device_info(reg, msg)

    async def device_info(self, reg: Registration, msg: Manscdp) -> None:
        fields = {
            key: msg.element.get(tag)
            for key, tag in (
                ("manufacturer", "Manufacturer"),
                ("model", "Model"),
                ("firmware", "Firmware"),
            )
        }
        tags = {f"gb_{k}": v[:200] for k, v in fields.items() if v}
        if not tags:
            return
        async with self.server.pool.connection() as conn, conn.transaction():
            await registry.merge_tags(conn, reg.device.id, tags)
            await store.save_device_info(
                conn, reg.device.id, fields["manufacturer"], fields["model"], fields["firmware"]
            )


def _signal(alarm: Alarm, source: DeviceRef) -> Signal:
    attrs = dict(alarm.attrs)
    if source.id != alarm.source_id:
        attrs["channel_id"] = alarm.source_id
    return Signal(
        ts=alarm.ts,
        kind=alarm.kind,
        source_id=source.id,
        source_type=source.type,
        area=source.area,
        site=source.site,
        building=source.building,
        floor=source.floor,
        confidence=alarm.confidence,
        attrs=attrs,
        tags=source.tags,
    )
