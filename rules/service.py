"""Live evaluation: committed signals → engine → incidents, and backtests over stored signals."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import DictRow
from pydantic import BaseModel

from devices.registry import get_device
from hub.db import connect
from hub.errors import NotFound
from hub.logs import get_logger
from hub.signals import Signal
from incidents.models import NewIncident
from incidents.store import is_open, last_closed_at, open_keys, open_or_attach
from rules.durations import parse_duration
from rules.engine import Decision, Engine
from rules.model import Rule
from rules.silences import Silence, list_silences
from rules.store import RULES_CHANNEL, list_rules

log = get_logger(__name__)
REPLAY = timedelta(hours=1)  # how much signal history rebuilds the windows after a restart


class RulesService:
    """Subscribe `on_signals` to the SignalBus of an ingest process."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.engine = Engine()
        self.silences: list[Silence] = []
        self._conn: AsyncConnection[DictRow] | None = None
        self._lock = asyncio.Lock()

    async def start(self, now: datetime) -> None:
        """Load the enabled rules and rebuild their windows from the last hour of signals."""
        conn = await connect(self.database_url)
        async with conn:
            for stored in await list_rules(conn, scope="", enabled=True):
                self.engine.load(Rule.model_validate(stored.document), stored.version)
            # Silences that ended within the replay window still cover late signals.
            self.silences = await list_silences(conn, scope="", active_at=now - REPLAY)
            for signal in await stored_signals(conn, now - REPLAY, now):
                self.engine.process(signal)
            self.engine.mark_open(await open_keys(conn))

    async def on_signals(self, signals: Sequence[Signal]) -> None:
        async with self._lock:
            audible = [s for s in signals if not any(x.covers(s) for x in self.silences)]
            decisions = [
                d for s in sorted(audible, key=lambda s: s.ts) for d in self.engine.process(s)
            ]
            if decisions:
                await self._apply(decisions)

    async def reload(self) -> None:
        """Pick up rule changes (each change starts that rule's windows afresh)."""
        conn = await connect(self.database_url)
        async with conn:
            stored = await list_rules(conn, scope="")
            silences = await list_silences(conn, scope="", active_at=datetime.now(UTC) - REPLAY)
        async with self._lock:
            self.silences = silences
            current = {r.id: r for r in stored if r.enabled}
            for rule_id in set(self.engine.rule_ids()) - set(current):
                self.engine.remove(rule_id)
            for rule_id, item in current.items():
                if self.engine.version_of(rule_id) != item.version:
                    self.engine.load(Rule.model_validate(item.document), item.version)

    async def run(self, *, tick_every: float = 1.0) -> None:
        """Until cancelled: `for` timers every second, and reloads when rules change."""
        listener = await AsyncConnection.connect(self.database_url, autocommit=True)
        async with listener:
            await listener.execute(f"LISTEN {RULES_CHANNEL}")
            while True:
                async for _ in listener.notifies(timeout=tick_every, stop_after=1):
                    await self.reload()
                await self.tick(datetime.now(UTC))

    async def tick(self, now: datetime) -> None:
        async with self._lock:
            decisions = self.engine.advance(now)
            if decisions:
                await self._apply(decisions)

    async def _apply(self, decisions: list[Decision]) -> None:
        # One kept connection: connecting per batch would add milliseconds to every alarm.
        for attempt in (1, 2):
            if self._conn is None or self._conn.closed:
                self._conn = await connect(self.database_url)
            try:
                for decision in decisions:
                    await apply_decision(self._conn, decision, self.engine)
                return
            except psycopg.OperationalError:
                await self._conn.close()
                self._conn = None
                if attempt == 2:
                    raise


async def apply_decision(
    conn: AsyncConnection[DictRow], decision: Decision, engine: Engine
) -> None:
    """Open (respecting the cooldown) or attach; the engine learns of closed incidents here."""
    rule, signal = decision.rule, decision.signal
    if decision.opens:
        closed = await last_closed_at(conn, rule.id, decision.key)
        if closed and signal.ts - closed < parse_duration(rule.cooldown):
            engine.closed(rule.id, decision.key)  # quiet time: forget this firing
            return
    elif not await is_open(conn, rule.id, decision.key):
        # Closed by a person since: start counting afresh (the cooldown applies on firing).
        engine.closed(rule.id, decision.key)
        return
    new = new_incident(decision)
    if decision.opens and rule.incident.dispatch == "nearest":
        # Signals carry no coordinates; the device that raised this one has them.
        try:
            device = await get_device(conn, signal.source_id, scope="")
            new = new.model_copy(update={"lat": device.lat, "lon": device.lon})
        except NotFound:
            pass
    await open_or_attach(conn, new, now=signal.ts)
    await conn.commit()


def new_incident(decision: Decision) -> NewIncident:
    rule, signal = decision.rule, decision.signal
    fields = {
        "site": signal.site or "",
        "building": signal.building or "",
        "area": signal.area,
        "source_id": signal.source_id,
        "kind": signal.kind,
        "count": decision.count,
        "zone": signal.attrs.get("zone") or "",
    }
    return NewIncident(
        rule_id=rule.id,
        rule_version=decision.rule_version,
        group_key=decision.key,
        category=rule.incident.category,
        priority=decision.priority,
        area=signal.area,
        site=signal.site,
        building=signal.building,
        title=rule.incident.title.format(**fields).strip(),
        signal_at=signal.ts,
        dispatch=rule.incident.dispatch,
        evidence=[_evidence(signal)],
    )


def _evidence(signal: Signal) -> dict[str, Any]:
    return {
        "ts": signal.ts.isoformat(),
        "kind": signal.kind,
        "source_id": signal.source_id,
        **({"evidence": signal.attrs["evidence"]} if "evidence" in signal.attrs else {}),
    }


async def stored_signals(
    conn: AsyncConnection[DictRow], start: datetime, end: datetime
) -> list[Signal]:
    cur = await conn.execute(
        "SELECT ts, kind, source_id, source_type, area, site, building, value, confidence, attrs"
        " FROM signals WHERE ts >= %s AND ts < %s ORDER BY ts, received_at",
        (start, end),
    )
    return [Signal(**row) for row in await cur.fetchall()]


class Backtest(BaseModel):
    incidents: int
    attached_signals: int
    per_day: dict[date, int]
    first: list[dict[str, Any]]


def backtest(rule: Rule, signals: Sequence[Signal], *, limit: int = 10) -> Backtest:
    """What `rule` would have raised over these signals, assuming nobody closed an incident
    within the range (so later matches attach, as they would live)."""
    engine = Engine([(rule, 0)])
    opened: list[Decision] = []
    attached = 0
    for signal in signals:
        for decision in engine.process(signal):
            if decision.opens:
                opened.append(decision)
            else:
                attached += 1
    per_day = Counter(d.signal.ts.date() for d in opened)
    first = [
        {"at": d.signal.ts, "group": d.key, "priority": d.priority, "title": new_incident(d).title}
        for d in opened[:limit]
    ]
    return Backtest(
        incidents=len(opened), attached_signals=attached, per_day=dict(per_day), first=first
    )
