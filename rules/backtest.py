"""What a rule (or a draft of it) would have raised over stored history.

The stored signals are replayed with the clock, the silences and the closes of the rule's
own incidents as live evaluation saw them (`rules.replay`), so the backtest of a stored rule
agrees with what it opened live.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import date, datetime, timedelta

from psycopg import AsyncConnection
from psycopg.rows import DictRow
from pydantic import BaseModel

from hub import signal_log
from hub.contracts import PRIORITY_RANK, Priority, Signal
from incidents.store import closed_since
from rules.decisions import incident_title
from rules.engine import LATENESS, Decision, Engine
from rules.model import Rule
from rules.replay import Close, replay
from rules.silences import Silence, list_silences


class BacktestIncident(BaseModel):
    """An incident the rule would have opened, as it would stand at the end of the range."""

    at: datetime  # event time of the signal that opened it
    group: str
    priority: Priority
    signals: int  # opened with, and attached since
    title: str


class Backtest(BaseModel):
    incidents: int
    attached_signals: int
    per_day: dict[date, int]
    first: list[BacktestIncident]


def backtest(
    rule: Rule,
    signals: Sequence[Signal],
    *,
    closes: Sequence[Close] = (),
    silences: Sequence[Silence] = (),
    until: datetime | None = None,
    lateness: timedelta = LATENESS,
    limit: int = 10,
) -> Backtest:
    engine = Engine([(rule, 0)], lateness=lateness, silences=silences)
    opened: list[Decision] = []
    found: list[BacktestIncident] = []
    current: dict[str, BacktestIncident] = {}  # group → its latest incident
    attached = 0
    for decision in replay(engine, signals, closes, until=until):
        if decision.recovers:
            if rule.recover is not None and rule.recover.action == "close":
                current.pop(decision.key, None)
            continue
        if decision.opens:
            opened.append(decision)
            incident = BacktestIncident(
                at=decision.signal.ts,
                group=decision.key,
                priority=decision.priority,
                signals=decision.count,
                title=incident_title(decision),
            )
            found.append(incident)
            current[decision.key] = incident
            continue
        attached += 1
        latest = current.get(decision.key)
        if latest is None:
            continue
        latest.signals += 1
        if PRIORITY_RANK[decision.priority] > PRIORITY_RANK[latest.priority]:
            latest.priority = decision.priority
    per_day = Counter(d.signal.ts.date() for d in opened)
    return Backtest(
        incidents=len(opened), attached_signals=attached, per_day=dict(per_day), first=found[:limit]
    )


async def stored_history(
    conn: AsyncConnection[DictRow], rule_id: str, start: datetime, end: datetime, *, scope: str
) -> tuple[list[Signal], list[Close], list[Silence]]:
    """The signals received in [start, end) in the caller's area, the closes of the rule's
    incidents then, and the silences that could cover those signals."""
    signals = await signal_log.read_received(conn, start, end, area_prefix=scope)
    closes = [
        Close(row["rule_id"], row["group_key"], row["closed_at"])
        for row in await closed_since(conn, start, area_prefix=scope)
        if row["rule_id"] == rule_id and row["closed_at"] < end
    ]
    silences = await list_silences(conn, scope="", active_at=start)
    return signals, closes, [s for s in silences if s.starts_at < end]
