"""Delivery, at least once. A sender claims a channel's due notifications (one channel at a
time per sender, under an advisory lock, so several sender processes share the work), takes
from the channel's budget, marks them `sending` for a while, commits, sends, and records the
outcome. A sender holds a session advisory lock for as long as it lives; one killed
mid-request leaves its claims behind with its lock gone, and the next sender to look puts them
back to `pending` (a claim also lapses after a while, should a sender hang): they are sent
again with the same idempotency key.

Chat robots and email take several incidents in one message: a burst is grouped within the
channel's rate instead of being dropped. Webhooks get one incident per request.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import Counter, Histogram
from psycopg import AsyncConnection
from psycopg.rows import DictRow

from devices.units import get_unit
from hub.db import Pool
from hub.errors import NotFound
from hub.logs import get_logger
from incidents.events import IncidentEvent, events_by_id
from incidents.models import Incident
from incidents.store import incidents_by_id
from notify import budget
from notify.channels import channel_configs
from notify.delivery import ANSWER_CHARS, Answer, next_attempt
from notify.links import link_for, token_of
from notify.models import ChannelIn, Mentions
from notify.template_store import template_for
from notify.templates import Links, incident_fields, local_time, render
from notify.transports import Item, Outgoing, Transport

log = get_logger(__name__)
SENT = Counter(
    "sb_notifications_total", "Notification delivery attempts by outcome", ["kind", "outcome"]
)
LATENCY = Histogram(
    "sb_notification_delivery_seconds",
    "From the notification's creation to its delivery",
    ["kind"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
GROUPED = frozenset({"wecom", "dingtalk", "feishu", "email"})
GROUP_MAX = 10  # incidents in one message (the robots' messages are a few KiB at most)
SINGLES_MAX = 20  # webhook requests one claim may make
CLAIM = timedelta(seconds=60)  # several times a request's timeout
CLAIMERS = 0x5B03  # advisory lock class of live senders; the second key is a sender's id

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class SenderConfig:
    public_url: str
    secret: bytes
    give_up: timedelta = timedelta(hours=6)
    first_retry: timedelta = timedelta(seconds=5)


@dataclass(slots=True)
class Claimed:
    """A notification taken for one attempt."""

    id: int
    incident_id: int
    event_id: int
    event: str
    reason: str
    repeat_no: int
    idempotency_key: str
    attempts: int
    created_at: datetime


class Sender:
    def __init__(
        self,
        pool: Pool,
        config: SenderConfig,
        transports: dict[str, Transport],
        *,
        clock: Clock = utc_now,
    ) -> None:
        self.pool = pool
        self.config = config
        self.transports = transports
        self.clock = clock
        self.links = Links(config.public_url.rstrip("/"))
        self.id = secrets.randbelow(2**31 - 1) + 1
        self._busy: dict[str, asyncio.Task[None]] = {}

    async def hold_life(self, conn: AsyncConnection[DictRow]) -> None:
        """Take the lock that says this sender lives, on a connection kept for its life."""
        await conn.execute("SELECT pg_advisory_lock(%s, %s)", (CLAIMERS, self.id))
        await conn.commit()

    async def step(self) -> float:
        """Start delivering every channel with something due; seconds until more falls due."""
        now = self.clock()
        async with self.pool.connection() as conn:
            await reclaim_lapsed(conn, now, self.id)
            due, later = await due_channels(conn, now)
        for channel_id in due:
            if channel_id not in self._busy:
                self._busy[channel_id] = asyncio.create_task(self._deliver_channel(channel_id))
        return 1.0 if later is None else max(0.01, (later - now).total_seconds())

    async def close(self) -> None:
        for task in list(self._busy.values()):
            task.cancel()
        await asyncio.gather(*self._busy.values(), return_exceptions=True)

    async def _deliver_channel(self, channel_id: str) -> None:
        try:
            await self._deliver(channel_id)
        except Exception:  # one channel's trouble must not stop the others
            log.exception("delivery to a channel failed", channel=channel_id)
        finally:
            self._busy.pop(channel_id, None)

    async def _deliver(self, channel_id: str) -> None:
        async with self.pool.connection() as conn:
            while True:
                claim = await self._claim(conn, channel_id)
                if claim is None:
                    return
                channel, batches = claim
                for batch in batches:
                    answer = await self._send(conn, channel, batch)
                    await self._record(conn, channel, batch, answer)

    async def _claim(
        self, conn: AsyncConnection[DictRow], channel_id: str
    ) -> tuple[ChannelIn, list[list[Claimed]]] | None:
        now = self.clock()
        async with conn.transaction():
            cur = await conn.execute(
                "SELECT pg_try_advisory_xact_lock(hashtext('sb-notify:' || %s)) AS mine",
                (channel_id,),
            )
            row = await cur.fetchone()
            if row is None or not row["mine"]:
                return None  # another sender has it
            channel = (await channel_configs(conn, [channel_id])).get(channel_id)
            if channel is None or not channel.enabled:
                await _fail_due(conn, channel_id, now, "the channel was deleted or disabled")
                return None
            grouped = channel.kind in GROUPED
            rows = await _due_rows(conn, channel_id, now, GROUP_MAX if grouped else SINGLES_MAX)
            if not rows:
                return None
            requests = 1 if grouped else len(rows)
            if channel.rate is not None:
                requests, wait = await budget.take(conn, channel_id, channel.rate, requests, now)
                if wait is not None:
                    await _postpone(conn, [r.id for r in rows], wait)
                    return None
                rows = rows if grouped else rows[:requests]
            await conn.execute(
                "UPDATE notifications SET status = 'sending', attempts = attempts + 1,"
                " claimed_until = %s, claimed_by = %s WHERE id = ANY(%s)",
                (now + CLAIM, self.id, [r.id for r in rows]),
            )
        for r in rows:
            r.attempts += 1
        return channel, ([rows] if grouped else [[r] for r in rows])

    async def _send(
        self, conn: AsyncConnection[DictRow], channel: ChannelIn, batch: list[Claimed]
    ) -> Answer:
        async with conn.transaction():
            message = await self._message(conn, channel, batch)
        return await self.transports[channel.kind].send(message)

    async def _message(
        self, conn: AsyncConnection[DictRow], channel: ChannelIn, batch: list[Claimed]
    ) -> Outgoing:
        incidents = await incidents_by_id(conn, sorted({c.incident_id for c in batch}))
        events = await events_by_id(conn, sorted({c.event_id for c in batch}))
        parts: list[tuple[Claimed, Incident, dict[str, Any], Mentions]] = []
        for claimed in batch:
            incident = incidents[claimed.incident_id]
            fields, mentions = await self._fields(
                conn, channel, claimed, incident, events.get(claimed.event_id)
            )
            parts.append((claimed, incident, fields, mentions))
        title, text = await self._words(conn, channel, parts)
        mentions = _merged([channel.mentions, *(m for *_, m in parts)])
        items = [
            Item(c.id, c.idempotency_key, c.event, i.model_dump(mode="json"))
            for c, i, _, _ in parts
        ]
        return Outgoing(channel, title, text, items, self.clock(), mentions)

    async def _fields(
        self,
        conn: AsyncConnection[DictRow],
        channel: ChannelIn,
        claimed: Claimed,
        incident: Incident,
        event: IncidentEvent | None,
    ) -> tuple[dict[str, Any], Mentions]:
        extra: dict[str, Any] = {"channel": channel.name}
        mentions = Mentions()
        if event is not None:
            extra.update(
                action=event.action or "",
                escalated_to=event.data.get("escalated_to") or "",
                **await _summon_fields(conn, event),
            )
        if claimed.reason.startswith("unit:"):
            unit_id = claimed.reason.removeprefix("unit:")
            link = await link_for(conn, incident.id, unit_id)
            extra["unit_link"] = self.links.unit(token_of(self.config.secret, link))
            try:
                unit = await get_unit(conn, unit_id, scope="")
                extra["unit"] = unit.name
                mentions = Mentions(
                    mobiles=unit.contacts.mobiles, user_ids=unit.contacts.wecom_users
                )
            except NotFound:
                extra["unit"] = unit_id
        elif claimed.reason.startswith("parent:"):
            try:
                parent = await get_unit(conn, claimed.reason.removeprefix("parent:"), scope="")
                mentions = Mentions(
                    mobiles=parent.contacts.mobiles, user_ids=parent.contacts.wecom_users
                )
            except NotFound:
                pass
        return incident_fields(incident, channel.language, self.links, **extra), mentions

    async def _words(
        self,
        conn: AsyncConnection[DictRow],
        channel: ChannelIn,
        parts: list[tuple[Claimed, Incident, dict[str, Any], Mentions]],
    ) -> tuple[str, str]:
        """One incident's message in its kind's template, or a group's: one line each."""
        singles = []
        for claimed, _, fields, _ in parts:
            template = await template_for(conn, claimed.event, channel.language)
            singles.append((render(template.title, template.body, fields), fields))
        if len(singles) == 1:
            return singles[0][0]
        group = await template_for(conn, "group", channel.language)
        lines = "\n".join(f"- [{title}]({fields['link']})" for (title, _), fields in singles)
        return render(group.title, group.body, {"count": len(singles), "lines": lines})

    async def _record(
        self,
        conn: AsyncConnection[DictRow],
        channel: ChannelIn,
        batch: list[Claimed],
        answer: Answer,
    ) -> None:
        now = self.clock()
        ids = [c.id for c in batch]
        async with conn.transaction():
            cur = await conn.execute(
                "INSERT INTO notify_requests (channel_id, sent_at, status, answer, notifications)"
                " VALUES (%s, %s, %s, %s, %s) RETURNING id",
                (channel.id, now, answer.status, answer.body, ids),
            )
            row = await cur.fetchone()
            assert row is not None
            request_id = row["id"]
            for claimed in batch:
                await self._settle(conn, claimed, answer, request_id, now)
        SENT.labels(channel.kind, answer.outcome).inc(len(batch))
        if answer.outcome == "delivered":
            for claimed in batch:
                LATENCY.labels(channel.kind).observe((now - claimed.created_at).total_seconds())
        else:
            log.warning(
                "notification not delivered",
                channel=channel.id,
                outcome=answer.outcome,
                status=answer.status,
                answer=answer.body[:200],
                notifications=ids,
            )

    async def _settle(
        self,
        conn: AsyncConnection[DictRow],
        claimed: Claimed,
        answer: Answer,
        request_id: int,
        now: datetime,
    ) -> None:
        outcome, answer_text = answer.outcome, answer.body
        if outcome == "retry" and now - claimed.created_at >= self.config.give_up:
            outcome = "failed"
            answer_text = (
                f"gave up after {claimed.attempts} attempts in {self.config.give_up}: {answer.body}"
            )[:ANSWER_CHARS]
        await conn.execute(
            """
            UPDATE notifications SET
                status = CASE %(outcome)s WHEN 'delivered' THEN 'delivered'
                              WHEN 'failed' THEN 'failed' ELSE 'pending' END,
                delivered_at = CASE WHEN %(outcome)s = 'delivered' THEN %(now)s END,
                failed_at = CASE WHEN %(outcome)s = 'failed' THEN %(now)s END,
                next_attempt_at = %(next)s, claimed_until = NULL, claimed_by = NULL,
                last_status = %(status)s,
                last_answer = %(answer)s, request_id = %(request)s
            WHERE id = %(id)s
            """,
            {
                "outcome": outcome,
                "now": now,
                "status": answer.status,
                "answer": answer_text,
                "request": request_id,
                "id": claimed.id,
                "next": next_attempt(claimed.attempts, answer, now, self.config.first_retry)
                if outcome == "retry"
                else now,
            },
        )


async def _summon_fields(conn: AsyncConnection[DictRow], event: IncidentEvent) -> dict[str, Any]:
    """吹哨报到's placeholders: the overdue unit and its report-in time, the units still to
    rate, and a summoned unit's own report-in time."""
    fields: dict[str, Any] = {}
    unit_id = event.data.get("unit_id")
    if event.kind == "incident.summon_overdue" and unit_id:
        fields["unit"] = await _unit_name(conn, str(unit_id))
    if event.kind == "incident.rating_due":
        fields["units"] = "、".join(
            [await _unit_name(conn, str(u)) for u in event.data.get("unit_ids", [])]
        )
    due = event.data.get("report_by")
    if due:
        fields["report_by"] = local_time(datetime.fromisoformat(str(due)))
    return fields


async def _unit_name(conn: AsyncConnection[DictRow], unit_id: str) -> str:
    try:
        return (await get_unit(conn, unit_id, scope="")).name
    except NotFound:
        return unit_id


def _merged(mentions: list[Mentions]) -> Mentions:
    mobiles = list(dict.fromkeys(m for item in mentions for m in item.mobiles))
    users = list(dict.fromkeys(u for item in mentions for u in item.user_ids))
    return Mentions(mobiles=mobiles, user_ids=users, all=any(m.all for m in mentions))


async def reclaim_lapsed(conn: AsyncConnection[DictRow], now: datetime, me: int) -> int:
    """Claims of senders that died (their life lock is free) or hung past the claim: pending
    again, to be sent with the same idempotency key."""
    cur = await conn.execute(
        "SELECT DISTINCT claimed_by FROM notifications WHERE status = 'sending'"
        " AND claimed_by <> %s",
        (me,),
    )
    dead = []
    for row in await cur.fetchall():
        probe = await conn.execute(
            "SELECT pg_try_advisory_lock(%s, %s) AS free", (CLAIMERS, row["claimed_by"])
        )
        free = await probe.fetchone()
        if free is not None and free["free"]:
            await conn.execute("SELECT pg_advisory_unlock(%s, %s)", (CLAIMERS, row["claimed_by"]))
            dead.append(row["claimed_by"])
    cur = await conn.execute(
        "UPDATE notifications SET status = 'pending', claimed_until = NULL, claimed_by = NULL"
        " WHERE status = 'sending' AND (claimed_until < %s OR claimed_by = ANY(%s))",
        (now, dead),
    )
    await conn.commit()
    return cur.rowcount


async def due_channels(
    conn: AsyncConnection[DictRow], now: datetime
) -> tuple[list[str], datetime | None]:
    """Channels with a notification due now, and when the next one falls due after that."""
    cur = await conn.execute(
        "SELECT channel_id, min(next_attempt_at) AS due FROM notifications"
        " WHERE status = 'pending' GROUP BY channel_id"
    )
    rows = await cur.fetchall()
    await conn.commit()
    due = sorted(r["channel_id"] for r in rows if r["due"] <= now)
    later = min((r["due"] for r in rows if r["due"] > now), default=None)
    return due, later


async def _due_rows(
    conn: AsyncConnection[DictRow], channel_id: str, now: datetime, limit: int
) -> list[Claimed]:
    cur = await conn.execute(
        "SELECT id, incident_id, event_id, event, reason, repeat_no, idempotency_key::text,"
        " attempts, created_at FROM notifications WHERE channel_id = %s AND status = 'pending'"
        " AND next_attempt_at <= %s ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
        (channel_id, now, limit),
    )
    return [Claimed(**row) for row in await cur.fetchall()]


async def _postpone(conn: AsyncConnection[DictRow], ids: list[int], until: datetime) -> None:
    await conn.execute(
        "UPDATE notifications SET next_attempt_at = %s WHERE id = ANY(%s)", (until, ids)
    )


async def _fail_due(
    conn: AsyncConnection[DictRow], channel_id: str, now: datetime, why: str
) -> None:
    await conn.execute(
        "UPDATE notifications SET status = 'failed', failed_at = %s, last_answer = %s"
        " WHERE channel_id = %s AND status = 'pending' AND next_attempt_at <= %s",
        (now, why, channel_id, now),
    )
