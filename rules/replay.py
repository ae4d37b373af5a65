"""Replaying history through the engine as live evaluation saw it.

Live evaluation takes signals in log order, each at the hub time it was received, learns of
closed incidents at the hub time they were closed, and ticks while time passes. A backtest
and a restarting rules process feed the engine the same way, ticking at the moment each
pending `for` falls due, so they reach the decisions (and the state) live evaluation did.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from hub.contracts import Signal
from rules.engine import Decision, Engine

_MAX_TICKS_BETWEEN = 10_000  # a guard: every tick fires something, so this is never reached


@dataclass(frozen=True)
class Close:
    """An incident of (rule, group) closed at hub time `at`."""

    rule_id: str
    group_key: str
    at: datetime


def received(signal: Signal) -> datetime:
    """The hub time a signal was received (its own `ts` before it was stored)."""
    return signal.received_at or signal.ts


def replay(
    engine: Engine,
    signals: Sequence[Signal],
    closes: Sequence[Close] = (),
    *,
    until: datetime | None = None,
) -> Iterator[Decision]:
    """Feed `signals` (in log order) and `closes` through the engine in hub-time order, with
    the ticks in between; then let time run on to `until`."""
    events: list[tuple[datetime, int, Signal | Close]] = [
        (received(s), i, s) for i, s in enumerate(signals)
    ]
    # A close at the same instant as a signal comes first, as a person's action committed
    # before the signal's transaction began.
    events += [(c.at, -1, c) for c in closes]
    events.sort(key=lambda e: (e[0], e[1]))
    for at, _, event in events:
        yield from tick_until(engine, at)
        if isinstance(event, Close):
            engine.closed(event.rule_id, event.group_key, event.at)
        else:
            yield from engine.process(event, at)
    if until is not None:
        yield from tick_until(engine, until)
        yield from engine.advance(until)


def tick_until(engine: Engine, at: datetime) -> Iterator[Decision]:
    """Every `for` that falls due before `at`, fired at its own moment."""
    ticks = 0
    due = engine.next_deadline()
    while due is not None and due <= at and ticks < _MAX_TICKS_BETWEEN:
        yield from engine.advance(due)
        ticks += 1
        due = engine.next_deadline()
