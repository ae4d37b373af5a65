"""Match expressions mean the same at every level of nesting, live and in backtests.

A deliberately plain reference, written here from design §4 and working on the rule's JSON
rather than on the hub's models, is compared with the one evaluator (`rules.conditions`) and
with the engine as live evaluation and backtests drive it (`rules.replay`), for random nested
any/all/where trees and random signals in and out of the window. Then the case that broke: an
`all` inside an `any` fired for a fall in 大堂 and for another community's cameras."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.contracts import Signal
from rules.backtest import backtest
from rules.conditions import Evaluator
from rules.engine import Decision, Engine
from rules.model import Rule
from rules.replay import replay, tick_until
from tests.rules_helpers import RulesDriver
from tests.test_registry_api import COMMUNITY, register_area

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
NEIGHBOUR = "440311001003"  # the same street, another community
ELSEWHERE = "440312001001"  # another district
KINDS = ["fall", "intrusion", "crowd"]

# --- the reference ----------------------------------------------------------------------------


def ref_passes(match: dict[str, Any], signal: Signal) -> bool:
    """One signal against one `{"kind": [...], "where": {...}}`, field by field."""
    where = match.get("where", {})
    if signal.kind not in match["kind"]:
        return False
    if not signal.area.startswith(where.get("area_prefix", "")):
        return False
    if signal.confidence < where.get("min_confidence", 0.0):
        return False
    if "source_type" in where and signal.source_type != where["source_type"]:
        return False
    if "zone" in where and signal.attrs.get("zone") != where["zone"]:
        return False
    if "value" in where:  # a range asks for a value, then bounds it
        low, high = where["value"].get("gte"), where["value"].get("lte")
        if signal.value is None:
            return False
        if (low is not None and signal.value < low) or (high is not None and signal.value > high):
            return False
    return all(signal.tags.get(k) == v for k, v in where.get("tags", {}).items())


def ref_met(condition: dict[str, Any], signals: list[Signal]) -> bool:
    """A condition against the signals of a window taken together."""
    if "any" in condition:
        return any(ref_met(c, signals) for c in condition["any"])
    if "all" in condition:
        return all(ref_met(c, signals) for c in condition["all"])
    return any(ref_passes(condition, s) for s in signals)


def ref_matches(condition: dict[str, Any]) -> list[dict[str, Any]]:
    parts = condition.get("any") or condition.get("all")
    if parts is None:
        return [condition]
    return [m for c in parts for m in ref_matches(c)]


def ref_relevant(condition: dict[str, Any], signal: Signal) -> bool:
    """A signal a rule takes: one that passes at least one of its matches."""
    return any(ref_passes(m, signal) for m in ref_matches(condition))


def ref_group(group_by: str, signal: Signal) -> tuple[Any, ...]:
    if group_by == "area":
        return (signal.area,)
    if group_by == "source_id":
        return (signal.area, signal.source_id)
    return (signal.area, signal.source_id, signal.attrs.get("zone"))  # zone


def ref_incidents(doc: dict[str, Any], signals: list[Signal]) -> list[frozenset[int]]:
    """Per group, with no closes: the first integer second `t` from which the threshold (at
    least `count` relevant signals with ts in (t - within, t], the condition met by them)
    holds at every second through `t + for`; the incident then holds every relevant signal of
    the group from `t - within` on. Returned as the sets of signal ids the incidents hold."""
    within, hold = doc["within_s"], doc["for_s"]
    count = doc["threshold"]["count"]
    groups: dict[tuple[Any, ...], list[Signal]] = defaultdict(list)
    for signal in signals:
        if ref_relevant(doc["match"], signal):
            groups[ref_group(doc["group_by"][0], signal)].append(signal)
    found = []
    for members in groups.values():
        times = [int((s.ts - T0).total_seconds()) for s in members]

        def holds(t: int, members: list[Signal] = members, times: list[int] = times) -> bool:
            window = [s for s, ts in zip(members, times, strict=True) if t - within < ts <= t]
            return len(window) >= count and ref_met(doc["match"], window)

        for start in range(min(times), max(times) + within):
            if all(holds(t) for t in range(start, start + hold + 1)):
                found.append(frozenset(s.id for s, ts in zip(members, times, strict=True)
                                       if ts > start - within and s.id is not None))  # fmt: skip
                break
    return sorted(found, key=sorted)


# --- random rules and signals -----------------------------------------------------------------

WHERE_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "zone": st.sampled_from(["电梯", "大堂"]),
    "min_confidence": st.sampled_from([0.5, 0.7, 0.9]),
    "area_prefix": st.sampled_from(["440311001", COMMUNITY, "440312"]),
    "source_type": st.sampled_from(["camera", "smoke_sensor"]),
    "value": st.fixed_dictionaries({}, optional={"gte": st.sampled_from([1.0, 2.0]),
                                                 "lte": st.sampled_from([2.0, 3.0])}),
    "tags": st.dictionaries(st.just("vendor"), st.sampled_from(["acme", "other"]), max_size=1),
}  # fmt: skip
# At most two fields each, so that random signals pass a fair share of the matches.
wheres = st.lists(st.sampled_from(sorted(WHERE_FIELDS)), max_size=2, unique=True).flatmap(
    lambda names: st.fixed_dictionaries({name: WHERE_FIELDS[name] for name in names})
)
matches = st.fixed_dictionaries(
    {"kind": st.lists(st.sampled_from(KINDS), min_size=1, max_size=2, unique=True)},
    optional={"where": wheres},
)


def conditions(depth: int) -> st.SearchStrategy[dict[str, Any]]:
    """Matches, and any/all of conditions up to `depth` levels (the model allows 4)."""
    if depth == 0:
        return matches
    nested = st.tuples(st.sampled_from(["any", "all"]),
                       st.lists(conditions(depth - 1), min_size=1, max_size=3))  # fmt: skip
    return st.one_of(matches, nested.map(lambda pair: {pair[0]: pair[1]}))


@st.composite
def signals(draw: st.DrawFn, most: int = 12) -> list[Signal]:
    """Signals with ids 0.. in `ts` order, from a few cameras and a sensor in three areas."""
    drawn = draw(st.lists(st.tuples(
        st.integers(0, 300), st.sampled_from([*KINDS, "smoke_alarm"]),
        st.sampled_from([COMMUNITY, NEIGHBOUR, ELSEWHERE]),
        st.sampled_from(["CAM-1", "CAM-2", "SD-1"]), st.sampled_from([None, "电梯", "大堂"]),
        st.sampled_from([0.3, 0.5, 0.7, 0.95]), st.sampled_from([None, 1.0, 2.5, 3.5]),
        st.sampled_from([{}, {"vendor": "acme"}, {"vendor": "other"}]),
    ), min_size=1, max_size=most))  # fmt: skip
    drawn.sort(key=lambda d: d[0])
    return [
        Signal(ts=T0 + timedelta(seconds=at), kind=kind, source_id=source,
               source_type="camera" if source.startswith("CAM") else "smoke_sensor", area=area,
               site="楼村花园", value=value, confidence=confidence,
               attrs={"zone": zone} if zone else {}, tags=tags, id=i, received_at=None)
        for i, (at, kind, area, source, zone, confidence, value, tags) in enumerate(drawn)
    ]  # fmt: skip


def make_rule(doc: dict[str, Any]) -> Rule:
    return Rule.model_validate({
        "id": "nested", "name": "nested", "match": doc["match"], "group_by": doc["group_by"],
        "threshold": {"count": doc["threshold"]["count"], "within": f"{doc['within_s']}s"},
        "for": f"{doc['for_s']}s",
        "incident": {"category": "security", "priority": "major", "title": "t"},
    })  # fmt: skip


rule_docs = st.fixed_dictionaries({
    "match": conditions(3),
    "group_by": st.sampled_from([["area"], ["source_id"], ["zone"]]),
    "threshold": st.fixed_dictionaries({"count": st.integers(1, 3)}),
    "within_s": st.sampled_from([30, 60, 120]),
    "for_s": st.sampled_from([0, 0, 20]),
})  # fmt: skip


# --- the evaluator and the engine against the reference -------------------------------------


@settings(max_examples=400, deadline=None)
@given(condition=conditions(4), window=signals())
def test_the_evaluator_agrees_with_the_reference(
    condition: dict[str, Any], window: list[Signal]
) -> None:
    evaluator = Evaluator(make_rule({
        "match": condition, "group_by": ["area"], "threshold": {"count": 1}, "within_s": 60,
        "for_s": 0,
    }).match)  # fmt: skip
    assert evaluator.met_by(window) == ref_met(condition, window)
    for signal in window:
        assert bool(evaluator.passed(signal)) == ref_relevant(condition, signal)


def engine_incidents(rule: Rule, stream: list[Signal]) -> list[frozenset[int]]:
    """What the engine opens, fed as the live consumer and backtests feed it."""
    held: dict[str, set[int]] = defaultdict(set)
    opened: dict[str, int] = defaultdict(int)
    end = T0 + timedelta(hours=1)
    for decision in replay(Engine([(rule, 1)]), stream, until=end):
        opened[decision.key] += decision.opens
        held[decision.key] |= {s.id for s in decision.signals if s.id is not None}
    assert all(n == 1 for n in opened.values()), opened  # nothing closes: one per group
    return sorted((frozenset(ids) for ids in held.values()), key=sorted)


@settings(max_examples=300, deadline=None)
@given(doc=rule_docs, stream=signals())
def test_live_and_backtest_fire_as_the_reference_says(
    doc: dict[str, Any], stream: list[Signal]
) -> None:
    rule = make_rule(doc)
    expected = ref_incidents(doc, stream)
    assert engine_incidents(rule, stream) == expected
    result = backtest(rule, stream, until=T0 + timedelta(hours=1), limit=100)
    assert result.incidents == len(expected)
    assert sorted(i.signals for i in result.first) == sorted(len(ids) for ids in expected)


def engine_incidents_out_of_order(rule: Rule, stream: list[Signal]) -> list[frozenset[int]]:
    """The same, with the signals arriving in the order given, each received a second after
    the newest `ts` so far (all within the engine's lateness), and time then running on.
    (`replay` would take them in `ts` order, as received then.)"""
    engine = Engine([(rule, 1)])
    held: dict[str, set[int]] = defaultdict(set)
    newest = T0
    decisions: list[Decision] = []
    for signal in stream:
        newest = max(newest, signal.ts)
        now = newest + timedelta(seconds=1)
        decisions += tick_until(engine, now)  # each `for` fired at its moment, as live
        decisions += engine.process(signal, now)
    decisions += tick_until(engine, newest + timedelta(hours=1))
    for decision in decisions:
        held[decision.key] |= {s.id for s in decision.signals if s.id is not None}
    return sorted((frozenset(ids) for ids in held.values()), key=sorted)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), doc=rule_docs, stream=signals(most=8))
def test_the_arrival_order_changes_nothing(
    data: st.DataObject, doc: dict[str, Any], stream: list[Signal]
) -> None:
    order = data.draw(st.permutations(stream))
    assert engine_incidents_out_of_order(make_rule(doc), order) == ref_incidents(doc, stream)


# --- the case that broke ----------------------------------------------------------------------

NESTED = {"any": [{"all": [
    {"kind": ["fall"], "where": {"zone": "电梯", "area_prefix": COMMUNITY}},
    {"kind": ["fall"], "where": {"min_confidence": 0.7}},
]}]}  # fmt: skip


def fall(at: float, area: str, source: str, zone: str, confidence: float) -> Signal:
    return Signal(ts=T0 + timedelta(seconds=at), kind="fall", source_id=source,
                  source_type="camera", area=area, site="楼村花园", confidence=confidence,
                  attrs={"zone": zone})  # fmt: skip


# Falls that meet one branch only (大堂, another community, too unsure), then a camera whose
# two falls meet one branch each, and one whose single fall meets both.
FALLS = [
    fall(0, COMMUNITY, "CAM-1", "大堂", 0.9),
    fall(5, NEIGHBOUR, "CAM-9", "电梯", 0.95),
    fall(10, ELSEWHERE, "CAM-8", "电梯", 0.95),
    fall(15, COMMUNITY, "CAM-2", "电梯", 0.3),
    fall(20, COMMUNITY, "CAM-1", "电梯", 0.4),
    fall(25, COMMUNITY, "CAM-3", "电梯", 0.8),
]
EXPECTED = [(f"area={COMMUNITY}|source_id=CAM-1", 2), (f"area={COMMUNITY}|source_id=CAM-3", 1)]
NESTED_RULE = {
    "id": "lift-fall", "name": "Fall in the lift", "match": NESTED,
    "incident": {"category": "safety", "priority": "major", "title": "Fall at {site} ({zone})"},
}  # fmt: skip


def test_a_nested_all_needs_each_branch_with_its_own_where() -> None:
    rule = Rule.model_validate(NESTED_RULE)
    alone = backtest(rule, FALLS[:4], until=T0 + timedelta(hours=1))
    assert alone.incidents == 0  # 大堂, another community, too unsure: one branch each
    result = backtest(rule, FALLS, until=T0 + timedelta(hours=1))
    assert [(i.group, i.signals) for i in result.first] == EXPECTED


def test_a_nested_all_wants_its_branches_within_the_window() -> None:
    rule = Rule.model_validate({**NESTED_RULE, "threshold": {"count": 1, "within": "60s"}})
    apart = [fall(0, COMMUNITY, "CAM-1", "大堂", 0.9), fall(61, COMMUNITY, "CAM-1", "电梯", 0.4)]
    assert backtest(rule, apart, until=T0 + timedelta(hours=1)).incidents == 0
    close = [fall(0, COMMUNITY, "CAM-1", "大堂", 0.9), fall(59, COMMUNITY, "CAM-1", "电梯", 0.4)]
    assert backtest(rule, close, until=T0 + timedelta(hours=1)).incidents == 1


@pytest.fixture
def lift_rule(admin: httpx.Client, database_url: str) -> Iterator[RulesDriver]:
    register_area(admin)
    created = admin.post("/api/v1/rules", json=NESTED_RULE)
    assert created.status_code == 201, created.text
    driver = RulesDriver(database_url, now=T0 - timedelta(seconds=1))
    yield driver
    driver.close()


def test_a_nested_all_live_and_in_its_backtest(
    lift_rule: RulesDriver, admin: httpx.Client, database_url: str
) -> None:
    """The consumer on the signal log opens exactly the two incidents; the falls before them
    were handled by the same consumer, which the two incidents prove was running."""
    for signal in FALLS:
        lift_rule.now = signal.ts + timedelta(milliseconds=50)
        lift_rule.feed([signal])
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT group_key, signal_count FROM incidents WHERE rule_id = %s ORDER BY id",
            ("lift-fall",),
        ).fetchall()
    assert [(r[0], r[1]) for r in rows] == EXPECTED
    span = {"from": (T0 - timedelta(minutes=1)).isoformat(),
            "to": (T0 + timedelta(hours=1)).isoformat()}  # fmt: skip
    result = admin.post("/api/v1/rules/lift-fall/backtest", json=span)
    assert result.status_code == 200, result.text
    assert [(i["group"], i["signals"]) for i in result.json()["first"]] == EXPECTED
