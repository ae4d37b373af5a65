"""Incidents and chosen signals to upper platforms: the outbox (filled in each incident's or
signal's own transaction) is fanned out to the uplinks that take each one, as delivery rows
holding the alarm's body; deliveries are sent while their uplink is registered and retried until
the upper answers 200. Each step is a transaction: a kill mid-send leaves the delivery pending,
sent again later."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import DictRow

from devices.gb_ids import is_gb_id
from devices.models import Device
from devices.registry import get_device
from gb28181.cascade import store
from gb28181.cascade.alarms import PRIORITY, Forwarded, signal_priority
from gb28181.cascade.session import UplinkSession
from gb28181.cascade.store import Planned
from hub import signal_log
from hub.backoff import Backoff
from hub.db import Pool
from hub.errors import NotFound
from incidents.models import Incident
from incidents.store import incidents_by_id

BATCH = 200
RETRY = Backoff(first_s=2.0, max_s=60.0)  # an uplink that did not answer 200: 2, 4, … 60 s


@dataclass(frozen=True, slots=True)
class Origin:
    """What raised the incident: its first signal's kind and attrs, and the channel."""

    kind: str
    attrs: dict[str, Any]
    channel_id: str | None
    lat: float | None = None
    lon: float | None = None


def takes(session: UplinkSession, incident: Incident, kind: str) -> bool:
    config = session.config
    rule = config.forward
    return (
        incident.area.startswith(config.area_prefix)
        and (not rule.priority or incident.priority.value in rule.priority)
        and (not rule.category or incident.category in rule.category)
        and (not rule.kind or kind in rule.kind)
    )


def takes_signal(session: UplinkSession, area: str, kind: str) -> bool:
    config = session.config
    return area.startswith(config.area_prefix) and kind in config.forward.signal_kind


async def fan_out(pool: Pool, sessions: list[UplinkSession], tz: Any) -> int:
    """Turn the oldest outbox rows into deliveries; how many rows (0: none left)."""
    async with pool.connection() as conn, conn.transaction():
        rows = await store.claim_outbox(conn, BATCH)
        if not rows:
            return 0
        ids = sorted({r.incident_id for r in rows if r.incident_id is not None})
        incidents = await incidents_by_id(conn, ids)
        planned: list[Planned] = []
        for row in rows:
            incident = incidents.get(row.incident_id) if row.incident_id is not None else None
            if incident is not None:
                planned += await _plan(conn, incident, sessions, tz)
            elif row.signal_id is not None:
                planned += await _plan_signal(conn, row.signal_id, sessions, tz)
        await store.add_deliveries(conn, planned)
        await store.mark_outbox(conn, [r.id for r in rows], datetime.now(UTC))
    return len(rows)


async def _plan(
    conn: AsyncConnection[DictRow], incident: Incident, sessions: list[UplinkSession], tz: Any
) -> list[Planned]:
    origin = await _origin(conn, incident)
    if origin.channel_id is None:
        return []
    alarm = Forwarded(
        channel_id=origin.channel_id,
        priority=PRIORITY.get(incident.priority.value, "4"),
        kind=origin.kind,
        attrs=origin.attrs,
        title=incident.title,
        site=incident.site,
        building=incident.building,
        created_at=incident.created_at,
        lat=incident.lat if incident.lat is not None else origin.lat,
        lon=incident.lon if incident.lon is not None else origin.lon,
    )
    return [
        Planned(
            s.config.id,
            incident.id,
            None,
            alarm.channel_id,
            alarm.body(incident.id % 10**9, tz, s.skew),
        )
        for s in sessions
        if takes(s, incident, origin.kind)
    ]


async def _plan_signal(
    conn: AsyncConnection[DictRow], signal_id: int, sessions: list[UplinkSession], tz: Any
) -> list[Planned]:
    """A chosen signal on its own, to the uplinks whose area and signal kinds take it."""
    found = await signal_log.read_ids(conn, [signal_id])
    if not found:
        return []
    signal = found[0]
    attrs = dict(signal.attrs)
    channel, lat, lon = await _channel(conn, signal.source_id, attrs)
    if channel is None:
        return []
    alarm = Forwarded(
        channel_id=channel,
        priority=signal_priority(attrs),
        kind=signal.kind,
        attrs=attrs,
        title=None,
        site=signal.site,
        building=signal.building,
        created_at=signal.ts,
        lat=lat,
        lon=lon,
    )
    return [
        Planned(s.config.id, None, signal_id, channel, alarm.body(signal_id % 10**9, tz, s.skew))
        for s in sessions
        if takes_signal(s, signal.area, signal.kind)
    ]


async def _origin(conn: AsyncConnection[DictRow], incident: Incident) -> Origin:
    first = incident.evidence[0] if incident.evidence else {}
    first = first if isinstance(first, dict) else {}
    kind, source = str(first.get("kind") or ""), str(first.get("source_id") or "")
    attrs: dict[str, Any] = {}
    if isinstance(first.get("signal_id"), int):
        found = await signal_log.read_ids(conn, [first["signal_id"]])
        if found:
            kind, source, attrs = found[0].kind, found[0].source_id, dict(found[0].attrs)
    channel, lat, lon = await _channel(conn, source, attrs)
    return Origin(kind, attrs, channel, lat, lon)


async def _channel(
    conn: AsyncConnection[DictRow], source: str, attrs: dict[str, Any]
) -> tuple[str | None, float | None, float | None]:
    """The channel that raised it (the alarm's own channel, the GB device, or the device's
    20-digit channel id), with the device's place."""
    try:
        device: Device | None = await get_device(conn, source, scope="")
    except NotFound:
        device = None
    channel = attrs.get("channel_id")
    if not (isinstance(channel, str) and is_gb_id(channel)):
        channel = source if is_gb_id(source) else device.gb_channel_id if device else None
    return (channel, device.lat, device.lon) if device else (channel, None, None)


async def send_due(pool: Pool, sessions: dict[str, UplinkSession]) -> int:
    """Send the due deliveries of the registered uplinks, all at once, and record the answers
    in one transaction; how many were sent."""
    live = [uplink_id for uplink_id, s in sessions.items() if s.registered]
    if not live:
        return 0
    async with pool.connection() as conn:
        due = await store.due_deliveries(conn, live, datetime.now(UTC), limit=BATCH)
    if not due:
        return 0
    answers = await asyncio.gather(*(sessions[d.uplink_id].message(d.body) for d in due))
    now = datetime.now(UTC)
    async with pool.connection() as conn, conn.transaction():
        for delivery, answer in zip(due, answers, strict=True):
            session = sessions[delivery.uplink_id]
            status = answer.status if answer is not None else None
            error = (
                None
                if status == 200
                else (
                    f"answered {status} {answer.reason}"
                    if answer is not None
                    else session.last_error
                )
            )
            retry = timedelta(seconds=RETRY.delay(delivery.attempts + 1))
            await store.delivery_attempted(
                conn, delivery, status=status, error=error, now=now, retry_in=retry
            )
            if answer is not None and answer.status in (403, 404):
                session.lost.set()  # the upper does not know us any more
    return len(due)
