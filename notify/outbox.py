"""Fan-out: incident events (written in the transaction of each change) become notifications,
one per route and channel, one per contact channel of a dispatched or summoned unit, and one
per contact channel of an overdue unit's parent organisation (督办); and repeats of
an unaccepted incident's first notifications. Each step is one transaction, idempotent: the
events it handles are marked in it, and a notification exists at most once per event, reason,
channel and repeat."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from psycopg import AsyncConnection
from psycopg.rows import DictRow, tuple_row

from devices.units import get_unit
from hub.durations import parse_duration
from hub.errors import NotFound
from hub.logs import get_logger
from incidents.events import IncidentEvent, claim_unhandled, mark_handled
from incidents.models import Incident
from incidents.states import Status
from incidents.store import incidents_by_id
from notify.channels import channel_configs
from notify.routes import enabled_routes, takes

log = get_logger(__name__)
NOTIFY_CHANNEL = "sb_notify"  # wakes the senders
BATCH = 200
REPEAT_HORIZON = timedelta(days=2)  # repeats are looked for among this recent a history


@dataclass(frozen=True, slots=True)
class Planned:
    event_id: int
    incident: Incident
    event: str
    reason: str
    channel_id: str
    repeat_no: int = 0


async def fan_out(conn: AsyncConnection[DictRow], now: datetime) -> int:
    """Handle the oldest unhandled events; how many (0: none left)."""
    async with conn.transaction():
        events = await claim_unhandled(conn, BATCH)
        if not events:
            return 0
        incidents = await incidents_by_id(conn, sorted({e.incident_id for e in events}))
        routes = await enabled_routes(conn)
        planned: list[Planned] = []
        for event in events:
            incident = incidents.get(event.incident_id)
            if incident is None:
                continue
            planned += [
                Planned(event.id, incident, event.kind, f"route:{route.id}", channel)
                for route in routes
                if takes(route, event, incident)
                for channel in route.channels
            ]
            planned += await _to_unit(conn, event, incident)
        await _insert(conn, planned, now)
        await mark_handled(conn, [e.id for e in events], now)
    return len(events)


async def _to_unit(
    conn: AsyncConnection[DictRow], event: IncidentEvent, incident: Incident
) -> list[Planned]:
    """A dispatch tells the unit, and a summon each unit it added, on each of its contact
    channels (with its link); an overdue report-in tells the unit's parent (督办)."""
    if event.kind == "incident.summon_overdue" and event.data.get("parent_id"):
        return await _told(
            conn, event, incident, str(event.data["parent_id"]), "incident.summon_overdue", "parent"
        )
    if event.kind != "incident.updated":
        return []
    if event.action == "dispatch" and event.data.get("unit_id"):
        return await _told(
            conn, event, incident, str(event.data["unit_id"]), "incident.dispatched", "unit"
        )
    if event.action == "summon":
        return [
            planned
            for unit_id in event.data.get("unit_ids", [])
            for planned in await _told(
                conn, event, incident, str(unit_id), "incident.summoned", "unit"
            )
        ]
    return []


async def _told(
    conn: AsyncConnection[DictRow],
    event: IncidentEvent,
    incident: Incident,
    unit_id: str,
    message: str,
    role: str,
) -> list[Planned]:
    """One notification per contact channel of the unit; `role` `unit` gives it its link."""
    try:
        unit = await get_unit(conn, unit_id, scope="")
    except NotFound:
        return []
    return [
        Planned(event.id, incident, message, f"{role}:{unit.id}", channel)
        for channel in unit.contacts.channels
    ]


async def _insert(conn: AsyncConnection[DictRow], planned: list[Planned], now: datetime) -> None:
    """Those whose channel exists, is enabled and lies over the incident's area (a channel
    never hears of another area's incidents, whatever a route or unit says)."""
    configs = await channel_configs(conn, sorted({p.channel_id for p in planned}))
    rows = []
    for item in planned:
        channel = configs.get(item.channel_id)
        if channel is None or not channel.enabled:
            log.warning(
                "notification skipped: no such channel, or disabled",
                channel=item.channel_id,
                reason=item.reason,
            )
            continue
        if not item.incident.area.startswith(channel.area):
            log.warning(
                "notification skipped: the channel is another area's",
                channel=item.channel_id,
                incident=item.incident.id,
            )
            continue
        rows.append(
            (
                item.event_id,
                item.incident.id,
                item.incident.area,
                item.event,
                item.reason,
                item.repeat_no,
                item.channel_id,
                now,
                now,
            )
        )
    if not rows:
        return
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO notifications (event_id, incident_id, area, event, reason, repeat_no,"
            " channel_id, created_at, next_attempt_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (event_id, reason, channel_id, repeat_no) DO NOTHING",
            rows,
        )
    await conn.execute("SELECT pg_notify(%s, '')", (NOTIFY_CHANNEL,))


async def schedule_repeats(conn: AsyncConnection[DictRow], now: datetime) -> int:
    """Send a route's first notification of an incident again, every `repeat`, up to
    `repeat_max` times, while the incident is still unaccepted."""
    async with conn.transaction():
        repeats = {r.id: r for r in await enabled_routes(conn) if r.repeat is not None}
        if not repeats:
            return 0
        async with conn.cursor(row_factory=tuple_row) as cur:
            await cur.execute(
                "SELECT event_id, incident_id, reason, channel_id, max(repeat_no),"
                " max(created_at) FROM notifications"
                " WHERE event IN ('incident.created', 'incident.repeat') AND created_at > %s"
                " AND reason = ANY(%s) GROUP BY event_id, incident_id, reason, channel_id",
                (now - REPEAT_HORIZON, [f"route:{rid}" for rid in repeats]),
            )
            found = await cur.fetchall()
        due = []
        for event_id, incident_id, reason, channel_id, last_no, last_at in found:
            route = repeats[reason.removeprefix("route:")]
            assert route.repeat is not None
            if last_no < route.repeat_max and last_at + parse_duration(route.repeat) <= now:
                due.append((event_id, incident_id, reason, channel_id, last_no + 1))
        if not due:
            return 0
        incidents = await incidents_by_id(conn, sorted({d[1] for d in due}))
        planned = [
            Planned(event_id, incidents[incident_id], "incident.repeat", reason, channel, no)
            for event_id, incident_id, reason, channel, no in due
            if incident_id in incidents and incidents[incident_id].status is Status.REPORTED
        ]
        await _insert(conn, planned, now)
    return len(planned)
