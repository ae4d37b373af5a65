"""The rules engine: signals in (in event time), decisions to open or attach incidents out.

Pure and deterministic: no clock, no database. Live evaluation and backtests feed it the same
signals and get the same decisions. Per rule and group key it keeps the recent matching
signals (the `threshold` window), the time the condition started to hold (`for`), and whether
an incident is open (later matches attach to it). Per source it keeps inhibitions: a camera
whose stream is lost or that was tampered with raises no analytics; a smoke sensor under test
or tampered with raises no alarm.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from hub.signals import Signal
from rules.durations import parse_duration
from rules.model import AllOf, AnyOf, Condition, Match, Priority, Rule

CAMERA_ANALYTICS = frozenset(
    {
        "camera_fire",
        "camera_smoke",
        "intrusion",
        "loitering",
        "crowd",
        "fall",
        "fire_lane_blocked",
        "ebike_in_elevator",
        "line_crossing",
    }
)
# What mutes a source, for how long (None: until the matching "restored" signal).
INHIBITORS: dict[str, tuple[frozenset[str], timedelta | None]] = {
    "stream_lost": (CAMERA_ANALYTICS, None),
    "camera_tamper": (CAMERA_ANALYTICS, timedelta(minutes=10)),
    "smoke_test": (frozenset({"smoke_alarm"}), timedelta(minutes=5)),
    "tamper": (frozenset({"smoke_alarm"}), timedelta(minutes=10)),
}
RESTORES = {"stream_restored": "stream_lost"}


@dataclass(frozen=True)
class Decision:
    """Open an incident for (rule, key), or attach the signal to the open one."""

    rule: Rule
    rule_version: int
    key: str
    signal: Signal
    opens: bool
    priority: Priority
    count: int


@dataclass
class _GroupState:
    hits: deque[datetime] = field(default_factory=deque)
    branch_seen: dict[int, datetime] = field(default_factory=dict)
    holding_since: datetime | None = None
    last: Signal | None = None
    open: bool = False


@dataclass
class _Loaded:
    rule: Rule
    version: int
    within: timedelta
    hold: timedelta
    confirm_window: timedelta
    groups: dict[str, _GroupState] = field(default_factory=dict)


class Engine:
    def __init__(self, rules: Iterable[tuple[Rule, int]] = ()) -> None:
        self._rules: dict[str, _Loaded] = {}
        self._mutes: dict[tuple[str, str], datetime | None] = {}  # (source, inhibitor) → until
        self._recent: deque[Signal] = deque()  # for confirmations
        self._confirm_window = timedelta(0)
        for rule, version in rules:
            self.load(rule, version)

    def load(self, rule: Rule, version: int) -> None:
        """Add or replace a rule; a changed rule starts with empty windows."""
        confirm_window = parse_duration(rule.confirm.within) if rule.confirm else timedelta(0)
        self._rules[rule.id] = _Loaded(
            rule,
            version,
            parse_duration(rule.threshold.within),
            parse_duration(rule.for_),
            confirm_window,
        )
        self._confirm_window = max(self._confirm_window, confirm_window)

    def rule_ids(self) -> list[str]:
        return list(self._rules)

    def version_of(self, rule_id: str) -> int | None:
        loaded = self._rules.get(rule_id)
        return loaded.version if loaded else None

    def remove(self, rule_id: str) -> None:
        self._rules.pop(rule_id, None)

    def closed(self, rule_id: str, key: str) -> None:
        """An incident was closed: the next firing for this key opens a new one."""
        loaded = self._rules.get(rule_id)
        if loaded and key in loaded.groups:
            loaded.groups[key] = _GroupState()

    def process(self, signal: Signal) -> list[Decision]:
        """Feed one signal (in event-time order); returns what to do about it."""
        self._inhibit(signal)
        self._remember(signal)
        if self._muted(signal):
            return []
        decisions = []
        for loaded in self._rules.values():
            decision = self._evaluate(loaded, signal)
            if decision:
                decisions.append(decision)
        decisions += self._confirmations(signal)
        return decisions

    # --- per rule ----------------------------------------------------------------------------

    def _evaluate(self, loaded: _Loaded, signal: Signal) -> Decision | None:
        rule = loaded.rule
        if not rule.enabled:
            return None
        branches = _matching_branches(rule.match, signal)
        if not branches or not (rule.schedule is None or rule.schedule.contains(signal.ts)):
            return None
        key = group_key(rule, signal)
        state = loaded.groups.setdefault(key, _GroupState())
        priority = self._priority(loaded, signal)
        if state.open:
            return Decision(rule, loaded.version, key, signal, False, priority, len(state.hits))
        _slide(state.hits, signal.ts, loaded.within)
        state.hits.append(signal.ts)
        state.last = signal
        for branch in branches:
            state.branch_seen[branch] = signal.ts
        if not self._holds(loaded, state, signal.ts):
            state.holding_since = None
            return None
        state.holding_since = state.holding_since or signal.ts
        if signal.ts - state.holding_since < loaded.hold:
            return None  # pending: `for` has not elapsed
        state.open = True
        return Decision(rule, loaded.version, key, signal, True, priority, len(state.hits))

    def advance(self, now: datetime) -> list[Decision]:
        """Let time pass without signals: a condition held for its `for` duration fires."""
        decisions = []
        for loaded in self._rules.values():
            if not loaded.hold:
                continue
            for key, state in loaded.groups.items():
                if state.open or state.holding_since is None or state.last is None:
                    continue
                _slide(state.hits, now, loaded.within)
                if not self._holds(loaded, state, now):
                    state.holding_since = None
                elif now - state.holding_since >= loaded.hold:
                    state.open = True
                    priority = self._priority(loaded, state.last)
                    decisions.append(
                        Decision(
                            loaded.rule,
                            loaded.version,
                            key,
                            state.last,
                            True,
                            priority,
                            len(state.hits),
                        )
                    )
        return decisions

    def mark_open(self, open_keys: set[tuple[str, str]]) -> None:
        """Align with the incidents table after a restart: which (rule, key) are open."""
        for rule_id, loaded in self._rules.items():
            for key, state in loaded.groups.items():
                state.open = (rule_id, key) in open_keys
            for r, key in open_keys:
                if r == rule_id and key not in loaded.groups:
                    loaded.groups[key] = _GroupState(open=True)

    def _holds(self, loaded: _Loaded, state: _GroupState, now: datetime) -> bool:
        if len(state.hits) < loaded.rule.threshold.count:
            return False
        if isinstance(loaded.rule.match, AllOf):
            needed = range(len(loaded.rule.match.all))
            return all(
                b in state.branch_seen and now - state.branch_seen[b] <= loaded.within
                for b in needed
            )
        return True

    def _priority(self, loaded: _Loaded, signal: Signal) -> Priority:
        rule, confirm, window = loaded.rule, loaded.rule.confirm, loaded.confirm_window
        if confirm is None:
            return rule.incident.priority
        where = getattr(signal, confirm.same)
        for other in self._recent:
            if (
                other.kind in confirm.kind
                and abs(other.ts - signal.ts) <= window
                and getattr(other, confirm.same) == where
                and where is not None
            ):
                return confirm.priority
        return rule.incident.priority

    def _confirmations(self, signal: Signal) -> list[Decision]:
        """A confirming signal raises an open incident it corroborates."""
        decisions = []
        for loaded in self._rules.values():
            confirm = loaded.rule.confirm
            if confirm is None or signal.kind not in confirm.kind:
                continue
            window = loaded.confirm_window
            for other in self._recent:
                if (
                    _matching_branches(loaded.rule.match, other)
                    and getattr(other, confirm.same) == getattr(signal, confirm.same)
                    and getattr(signal, confirm.same) is not None
                    and abs(signal.ts - other.ts) <= window
                ):
                    key = group_key(loaded.rule, other)
                    state = loaded.groups.get(key)
                    if state and state.open:
                        decisions.append(
                            Decision(
                                loaded.rule,
                                loaded.version,
                                key,
                                signal,
                                False,
                                confirm.priority,
                                len(state.hits),
                            )
                        )
                    break
        return decisions

    # --- inhibition and memory ----------------------------------------------------------------

    def _inhibit(self, signal: Signal) -> None:
        if signal.kind in RESTORES:
            self._mutes.pop((signal.source_id, RESTORES[signal.kind]), None)
        rule = INHIBITORS.get(signal.kind)
        if rule:
            _, lasts = rule
            self._mutes[(signal.source_id, signal.kind)] = signal.ts + lasts if lasts else None

    def _muted(self, signal: Signal) -> bool:
        for (source, inhibitor), until in list(self._mutes.items()):
            if source != signal.source_id or signal.kind not in INHIBITORS[inhibitor][0]:
                continue
            if until is None or signal.ts < until:
                return True
            del self._mutes[(source, inhibitor)]
        return False

    def _remember(self, signal: Signal) -> None:
        self._recent.append(signal)
        while self._recent and signal.ts - self._recent[0].ts > self._confirm_window:
            self._recent.popleft()


def group_key(rule: Rule, signal: Signal) -> str:
    """The values of the rule's `group_by` fields, e.g. `building=3栋|source_id=SD-1`."""
    parts = []
    for name in rule.group_by:
        value = signal.attrs.get("zone") if name == "zone" else getattr(signal, name)
        parts.append(f"{name}={value if value is not None else ''}")
    return "|".join(parts)


def _matching_branches(condition: Condition, signal: Signal) -> list[int]:
    """Indexes of the top-level branches the signal matches ([0] for a plain match)."""
    if isinstance(condition, Match):
        return [0] if _matches(condition, signal) else []
    branches = condition.any if isinstance(condition, AnyOf) else condition.all
    return [i for i, branch in enumerate(branches) if _matching_branches(branch, signal)]


def _matches(match: Match, signal: Signal) -> bool:
    where = match.where
    if signal.kind not in match.kind or not signal.area.startswith(where.area_prefix):
        return False
    if signal.confidence < where.min_confidence:
        return False
    if where.source_type and signal.source_type != where.source_type:
        return False
    if where.zone and signal.attrs.get("zone") != where.zone:
        return False
    if where.value:
        if signal.value is None:
            return False
        if where.value.gte is not None and signal.value < where.value.gte:
            return False
        if where.value.lte is not None and signal.value > where.value.lte:
            return False
    return all(str(signal.attrs.get(k)) == v for k, v in where.tags.items())


def _slide(hits: deque[datetime], now: datetime, within: timedelta) -> None:
    while hits and now - hits[0] >= within:
        hits.popleft()
