"""The engine's answers do not depend on the order signals arrive in, within the lateness
it tolerates: windows, `for` and confirmations, for random times and random orders."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.contracts import PRIORITY_RANK, Priority, Signal
from rules.builtin import BUILTIN_RULES
from rules.engine import Engine
from rules.model import Rule

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
AREA = "440311001002"
LATENESS = timedelta(minutes=5)


def sig(kind: str, at: float, building: str = "3栋", source: str = "SD-1") -> Signal:
    return Signal(ts=T0 + timedelta(seconds=at), kind=kind, source_id=source,
                  source_type="camera" if source.startswith("CAM") else "smoke_sensor",
                  area=AREA, site="楼村花园", building=building)  # fmt: skip


def rule(**overrides: Any) -> Rule:
    doc: dict[str, Any] = {
        "id": "rule", "name": "rule", "match": {"kind": ["smoke_alarm"]}, "group_by": ["building"],
        "incident": {"category": "fire", "priority": "major", "title": "t"},
    }  # fmt: skip
    doc.update(overrides)
    return Rule.model_validate(doc)


def outcome(
    engine_rule: Rule, signals: list[Signal]
) -> tuple[Counter[str], dict[str, int], dict[str, str]]:
    """Incidents per group, signals they hold per group, and the priority each group's
    incident reached, for signals that arrive in the given order, each received 1 s after
    the newest so far, and time then running on."""
    engine = Engine([(engine_rule, 1)], lateness=LATENESS)
    opened: Counter[str] = Counter()
    held: Counter[str] = Counter()
    priorities: dict[str, str] = {}
    newest = T0
    decisions = []
    for signal in signals:
        newest = max(newest, signal.ts)
        now = newest + timedelta(seconds=1)
        decisions += engine.advance(now)
        decisions += engine.process(signal, now)
    decisions += engine.advance(newest + timedelta(hours=1))
    for d in decisions:
        opened[d.key] += d.opens
        held[d.key] += d.count
        best = priorities.get(d.key, Priority.ROUTINE)
        priorities[d.key] = max(best, d.priority, key=lambda p: PRIORITY_RANK[Priority(p)])
    return opened, dict(held), priorities


# Signal times within 240 s (inside the lateness) and an order to deliver them in.
times = st.lists(st.integers(min_value=0, max_value=240), min_size=1, max_size=7)


def orders(n: int) -> st.SearchStrategy[list[int]]:
    return st.permutations(list(range(n)))


@settings(max_examples=150, deadline=None)
@given(data=st.data(), offsets=times)
def test_threshold_windows_ignore_arrival_order(data: st.DataObject, offsets: list[int]) -> None:
    three_a_minute = rule(threshold={"count": 3, "within": "60s"})
    signals = [sig("smoke_alarm", t) for t in offsets]
    order = data.draw(orders(len(signals)))
    assert outcome(three_a_minute, [signals[i] for i in order]) == outcome(
        three_a_minute, sorted(signals, key=lambda s: s.ts)
    )


@settings(max_examples=150, deadline=None)
@given(data=st.data(), offsets=times)
def test_for_ignores_arrival_order(data: st.DataObject, offsets: list[int]) -> None:
    held = rule(match={"kind": ["crowd"]}, threshold={"count": 1, "within": "40s"},
                **{"for": "60s"})  # fmt: skip
    signals = [sig("crowd", t, source="CAM-1") for t in offsets]
    order = data.draw(orders(len(signals)))
    assert outcome(held, [signals[i] for i in order]) == outcome(
        held, sorted(signals, key=lambda s: s.ts)
    )


@settings(max_examples=150, deadline=None)
@given(data=st.data(), alarms=times, cameras=times)
def test_confirmations_ignore_arrival_order(
    data: st.DataObject, alarms: list[int], cameras: list[int]
) -> None:
    smoke = next(r for r in BUILTIN_RULES if r.id == "smoke-alarm")
    signals = [sig("smoke_alarm", t) for t in alarms]
    signals += [sig("camera_smoke", t, source="CAM-1") for t in cameras[:2]]
    order = data.draw(orders(len(signals)))
    assert outcome(smoke, [signals[i] for i in order]) == outcome(
        smoke, sorted(signals, key=lambda s: s.ts)
    )


def test_an_old_signal_does_not_count_in_a_recent_window() -> None:
    """Three faults 160 s apart never make "3 within 1 min", whatever their order."""
    three = rule(match={"kind": ["device_fault"]}, threshold={"count": 3, "within": "1m"})
    faults = [sig("device_fault", t) for t in (0, 160, 320)]
    for order in ([0, 1, 2], [2, 0, 1], [2, 1, 0], [1, 2, 0]):
        opened, _, _ = outcome(three, [faults[i] for i in order])
        assert sum(opened.values()) == 0, order


def test_lateness_is_counted() -> None:
    engine = Engine([(rule(), 1)], lateness=timedelta(minutes=1))
    engine.process(sig("smoke_alarm", 600, building="9栋"), T0 + timedelta(seconds=601))
    engine.process(sig("smoke_alarm", 0, building="9栋"), T0 + timedelta(seconds=602))
    assert engine.late_signals == 1
