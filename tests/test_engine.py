"""The rules engine, pure and in event time: each feature with a controllable clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hub.contracts import Priority, Signal
from rules.backtest import backtest
from rules.builtin import BUILTIN_RULES
from rules.engine import Decision, Engine
from rules.model import Rule

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)  # 20:00 in Shanghai, a Sunday
AREA = "440311001002"
B3 = f"area={AREA}|site=楼村花园|building=3栋"


def sig(kind: str, at: float, *, source: str = "SD-1", building: str = "3栋",
        area: str = "440311001002", value: float | None = None, confidence: float = 1.0,
        **attrs: Any) -> Signal:  # fmt: skip
    return Signal(
        ts=T0 + timedelta(seconds=at), kind=kind, source_id=source,
        source_type="camera" if source.startswith("CAM") else "smoke_sensor", area=area,
        site="楼村花园", building=building, value=value, confidence=confidence, attrs=attrs,
    )  # fmt: skip


def rule(**overrides: Any) -> Rule:
    doc: dict[str, Any] = {
        "id": "rule", "name": "rule", "match": {"kind": ["smoke_alarm"]},
        "incident": {"category": "fire", "priority": "major", "title": "t"},
    }  # fmt: skip
    doc.update(overrides)
    return Rule.model_validate(doc)


def run(engine: Engine, signals: list[Signal]) -> list[Decision]:
    """Each signal received the moment its device says it happened."""
    return [d for s in signals for d in engine.process(s, s.ts)]


def opened(decisions: list[Decision]) -> list[tuple[float, str]]:
    return [((d.signal.ts - T0).total_seconds(), d.key) for d in decisions if d.opens]


def test_threshold_counts_within_a_sliding_window_per_group() -> None:
    engine = Engine([(rule(threshold={"count": 3, "within": "60s"}, group_by=["building"]), 1)])
    decisions = run(engine, [
        sig("smoke_alarm", 0), sig("smoke_alarm", 30), sig("smoke_alarm", 61, building="5栋"),
        sig("smoke_alarm", 70),  # 3栋: the one at 0 s has left the window → 2
        sig("smoke_alarm", 80),  # 30, 70, 80 → fires
        sig("smoke_alarm", 85),  # open: attaches
    ])  # fmt: skip
    assert opened(decisions) == [(80.0, B3)]
    assert [d.opens for d in decisions] == [True, False]


def test_for_waits_until_the_condition_has_held() -> None:
    engine = Engine([(rule(match={"kind": ["crowd"]}, threshold={"count": 1, "within": "30s"},
                           **{"for": "60s"}), 1)])  # fmt: skip
    assert run(engine, [sig("crowd", 0, source="CAM-1"), sig("crowd", 25, source="CAM-1")]) == []
    assert engine.advance(T0 + timedelta(seconds=50)) == []  # held 50 s of 60
    more = run(engine, [sig("crowd", 50, source="CAM-1")])
    assert more == []
    fired = engine.advance(T0 + timedelta(seconds=61))
    assert [d.opens for d in fired] == [True]
    # A condition that stops holding resets the pending time.
    engine2 = Engine([(rule(match={"kind": ["crowd"]}, threshold={"count": 1, "within": "30s"},
                            **{"for": "60s"}), 1)])  # fmt: skip
    run(engine2, [sig("crowd", 0, source="CAM-1")])
    assert engine2.advance(T0 + timedelta(seconds=40)) == []  # not held: window empty
    assert run(engine2, [sig("crowd", 70, source="CAM-1")]) == []  # pending anew from 70 s


def test_schedule_in_its_time_zone_across_midnight() -> None:
    night = rule(match={"kind": ["intrusion"]},
                 schedule={"days": "sat", "hours": "22:00-06:00", "tz": "Asia/Shanghai"})  # fmt: skip
    engine = Engine([(night, 1)])
    # T0 is Sunday 20:00 in Shanghai. Saturday's night window covers Sunday 00:00-06:00.
    sunday_0300 = -17 * 3600.0
    saturday_2300 = -21 * 3600.0
    sunday_2300 = 3 * 3600.0
    decisions = run(engine, [sig("intrusion", sunday_2300, source="CAM-1"),
                             sig("intrusion", saturday_2300, source="CAM-2"),
                             sig("intrusion", sunday_0300, source="CAM-3")])  # fmt: skip
    assert sorted(d.signal.source_id for d in decisions) == ["CAM-2", "CAM-3"]


def test_confirmation_raises_priority_in_either_order() -> None:
    smoke = next(r for r in BUILTIN_RULES if r.id == "smoke-alarm")
    engine = Engine([(smoke, 1)])
    camera_first = run(engine, [sig("camera_smoke", 0, source="CAM-1"), sig("smoke_alarm", 30)])
    assert [(d.opens, d.priority) for d in camera_first] == [(True, Priority.EMERGENCY)]
    engine = Engine([(smoke, 1)])
    alarm_first = run(engine, [sig("smoke_alarm", 0), sig("camera_fire", 60, source="CAM-1")])
    assert [(d.opens, d.priority) for d in alarm_first] == [
        (True, Priority.MAJOR), (False, Priority.EMERGENCY),
    ]  # fmt: skip
    elsewhere = Engine([(smoke, 1)])
    other = run(
        elsewhere, [sig("camera_smoke", 0, source="CAM-1", building="9栋"), sig("smoke_alarm", 5)]
    )
    assert [d.priority for d in other] == [Priority.MAJOR]
    stale = Engine([(smoke, 1)])
    late = run(stale, [sig("camera_smoke", 0, source="CAM-1"), sig("smoke_alarm", 200)])
    assert [d.priority for d in late] == [Priority.MAJOR]  # 200 s > the 120 s window


def test_a_signal_that_confirms_an_incident_opens_no_other() -> None:
    """With the built-in rules together, a camera's fire in the building of an open smoke alarm
    raises that incident; it is not a second incident for the same fire. The same camera's
    fire elsewhere, or after the window, opens camera-fire as usual."""
    shipped = [(r, 1) for r in BUILTIN_RULES]
    engine = Engine(shipped)
    one_fire = run(engine, [sig("smoke_alarm", 0), sig("camera_fire", 30, source="CAM-1")])
    assert [(d.rule.id, d.opens, d.priority) for d in one_fire] == [
        ("smoke-alarm", True, Priority.MAJOR),
        ("smoke-alarm", False, Priority.EMERGENCY),
    ]
    elsewhere = run(engine, [sig("camera_fire", 40, source="CAM-2", building="9栋")])
    assert [(d.rule.id, d.opens) for d in elsewhere] == [("camera-fire", True)]
    later = Engine(shipped)
    apart = run(later, [sig("smoke_alarm", 0), sig("camera_fire", 300, source="CAM-1")])
    assert [(d.rule.id, d.opens) for d in apart] == [("smoke-alarm", True), ("camera-fire", True)]


def test_all_needs_every_branch_within_the_window() -> None:
    builtin = next(r for r in BUILTIN_RULES if r.id == "confirmed-fire")
    confirmed = builtin.model_copy(update={"enabled": True})
    engine = Engine([(confirmed, 1)])
    alone = run(engine, [sig("smoke_alarm", 0)])
    assert alone == []
    both = run(engine, [sig("camera_fire", 60, source="CAM-1")])
    assert [(d.opens, d.key) for d in both] == [(True, B3)]
    apart = Engine([(confirmed, 1)])
    assert run(apart, [sig("smoke_alarm", 0), sig("camera_fire", 300, source="CAM-1")]) == []


def test_any_matches_either_branch() -> None:
    either = rule(match={"any": [{"kind": ["intrusion"], "where": {"zone": "gate"}},
                                 {"kind": ["loitering"]}]}, group_by=["source_id"])  # fmt: skip
    engine = Engine([(either, 1)])
    decisions = run(engine, [sig("intrusion", 0, source="CAM-1", zone="lobby"),
                             sig("loitering", 1, source="CAM-2"),
                             sig("intrusion", 2, source="CAM-3", zone="gate")])  # fmt: skip
    assert [d.signal.source_id for d in decisions] == ["CAM-2", "CAM-3"]


def test_where_filters() -> None:
    picky = rule(match={"kind": ["camera_fire"], "where": {
        "area_prefix": "440311001", "min_confidence": 0.6, "value": {"gte": 2}}})  # fmt: skip
    engine = Engine([(picky, 1)])
    decisions = run(engine, [
        sig("camera_fire", 0, source="CAM-1", confidence=0.5, value=3),
        sig("camera_fire", 1, source="CAM-2", confidence=0.9, value=1),
        sig("camera_fire", 2, source="CAM-3", confidence=0.9, value=3, area="440311002001"),
        sig("camera_fire", 3, source="CAM-4", confidence=0.9, value=3),
    ])  # fmt: skip
    assert [d.signal.source_id for d in decisions] == ["CAM-4"]


def test_inhibition_mutes_what_a_signal_explains() -> None:
    engine = Engine([(rule(match={"kind": ["intrusion"]}), 1), (rule(id="smoke-rule"), 1)])
    decisions = run(engine, [
        sig("stream_lost", 0, source="CAM-1"),
        sig("intrusion", 10, source="CAM-1"),  # muted: the picture is gone
        sig("intrusion", 11, source="CAM-2"),  # another camera is fine
        sig("stream_restored", 20, source="CAM-1"),
        sig("intrusion", 30, source="CAM-1"),
        sig("smoke_test", 40),
        sig("smoke_alarm", 45),  # the test button, not a fire
        sig("smoke_alarm", 400),  # five minutes later it counts again
    ])  # fmt: skip
    assert [(d.signal.source_id, (d.signal.ts - T0).seconds) for d in decisions] == [
        ("CAM-2", 11), ("CAM-1", 30), ("SD-1", 400),
    ]  # fmt: skip


def test_closed_rearms_the_group() -> None:
    engine = Engine([(rule(), 1)])
    assert [d.opens for d in run(engine, [sig("smoke_alarm", 0), sig("smoke_alarm", 5)])] == [
        True,
        False,
    ]
    engine.closed("rule", f"area={AREA}|source_id=SD-1", T0 + timedelta(seconds=6))
    assert [d.opens for d in run(engine, [sig("smoke_alarm", 10)])] == [True]


def test_disabled_rules_are_silent() -> None:
    engine = Engine([(rule(enabled=False), 1)])
    assert run(engine, [sig("smoke_alarm", 0)]) == []


def test_backtest_counts_per_day() -> None:
    signals = [
        sig("smoke_alarm", day * 86400 + i, building=f"{day}栋") for day in range(3) for i in (0, 5)
    ]
    result = backtest(rule(group_by=["building"]), signals)
    assert result.incidents == 3 and result.attached_signals == 3
    assert sorted(result.per_day.values()) == [1, 1, 1]
    assert result.first[0].group == f"area={AREA}|site=楼村花园|building=0栋"


def test_recovery_closes_or_notes_the_open_incident_of_its_own_group() -> None:
    offline = rule(
        id="offline", match={"kind": ["device_offline"], "where": {"area_prefix": "440311"}},
        recover={"kind": ["device_online"], "action": "close"}, cooldown="10m",
    )  # fmt: skip
    engine = Engine([(offline, 1)])
    decisions = run(engine, [
        sig("device_online", 0),  # nothing open: nothing to recover
        sig("device_offline", 10), sig("device_offline", 20, source="SD-2"),
        sig("device_online", 30, source="SD-3"),  # another group
        sig("device_online", 40, area="440312001001"),  # outside the rule's areas
        sig("device_online", 50),
    ])  # fmt: skip
    recovered = [(d.signal.source_id, (d.signal.ts - T0).total_seconds()) for d in decisions
                 if d.recovers]  # fmt: skip
    assert recovered == [("SD-1", 50.0)]
    # Closed by its recovery: the group cools down like after a person's close, then re-arms.
    assert run(engine, [sig("device_offline", 60)]) == []
    assert opened(run(engine, [sig("device_offline", 50 + 601)])) == [
        (651.0, f"area={AREA}|source_id=SD-1")
    ]

    noting = rule(id="offline", match={"kind": ["device_offline"]},
                  recover={"kind": ["device_online"], "action": "note"})  # fmt: skip
    engine = Engine([(noting, 1)])
    decisions = run(engine, [sig("device_offline", 0), sig("device_online", 5),
                             sig("device_offline", 10)])  # fmt: skip
    assert [(d.opens, d.recovers) for d in decisions] == [
        (True, False),
        (False, True),
        (False, False),
    ]  # still open: attaches


def test_a_silence_does_not_hold_a_recovery_back() -> None:
    from rules.silences import Matcher, Silence

    silence = Silence(id=1, created_by="t", created_at=T0, starts_at=T0 - timedelta(hours=1),
                      ends_at=T0 + timedelta(hours=1), reason="works",
                      matcher=Matcher(kind=["device_online"]))  # fmt: skip
    offline = rule(id="offline", match={"kind": ["device_offline"]},
                   recover={"kind": ["device_online"]})  # fmt: skip
    engine = Engine([(offline, 1)], silences=[silence])
    decisions = run(engine, [sig("device_offline", 0), sig("device_online", 5)])
    assert [d.recovers for d in decisions] == [False, True]


def test_a_backtest_counts_the_incident_after_a_recovery_as_new() -> None:
    offline = rule(id="offline", match={"kind": ["device_offline"]},
                   recover={"kind": ["device_online"]})  # fmt: skip
    found = backtest(offline, [sig("device_offline", 0), sig("device_online", 5),
                               sig("device_offline", 10)])  # fmt: skip
    assert found.incidents == 2 and found.attached_signals == 0
