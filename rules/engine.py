"""The rules engine: signals in, decisions to open or attach incidents out.

Pure and deterministic: no database and no clock of its own. Every call says what time it is
for the hub (`now`: when the signal was received, or when a tick runs), so live evaluation
and a backtest that replays the same signals, closes and ticks get the same decisions.

Time, as the Rules section of docs/api.md defines it:
- What a rule matches, its windows, `for`, schedules and confirmations are in event time,
  the `ts` the device stamped. Per rule and group key the engine keeps the matching signals
  sorted by `ts`, so the answer does not depend on the order they arrive in, as long as a
  signal is no more than `lateness` older than its group's clock. A signal later than that
  still counts, as if it had happened at the edge of the tolerance.
- A group's own clock is the newest `ts` it has seen, carried forward at the hub's pace
  since that signal was received: `for` then measures the device's time whether its clock is
  fast or slow, and a hold fires on a tick without another signal.
- Cooldown is hub time: quiet for `cooldown` after the hub closed the incident.

What a condition means, nested `any`/`all` included, is `rules.conditions`: the one evaluator
of match expressions. Conditions are monotone (more signals can only make a threshold hold),
so firing as soon as the signals at hand justify it is never wrong; a late signal can only
make it fire sooner.
"""

from __future__ import annotations

import bisect
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from hub.contracts import Priority, Signal
from hub.durations import parse_duration
from rules.conditions import Evaluator
from rules.model import Rule
from rules.muting import Muting
from rules.silences import Silence

LATENESS = timedelta(minutes=5)
MAX_HITS = 10_000  # per group: a flood keeps the newest ones
_ZERO = timedelta(0)
# A group by one of these means the place as a whole, so that "3栋" of one site (or one
# district) is never "3栋" of another.
_EXPANDS = {"building": ("site", "building"), "site": ("site",), "zone": ("source_id", "zone")}


@dataclass(frozen=True)
class Decision:
    """Open an incident for (rule, key) with `signals`, or attach `signal` to the open one;
    or, with `recovers`, `signal` says the trouble of the open one is over."""

    rule: Rule
    rule_version: int
    key: str
    signal: Signal  # the latest signal behind the decision
    opens: bool
    priority: Priority
    signals: tuple[Signal, ...]
    recovers: bool = False

    @property
    def count(self) -> int:
        return len(self.signals)


@dataclass(slots=True)
class _Hit:
    ts: datetime
    order: int  # arrival order: ties in `ts` stay in it
    passed: frozenset[int]  # the rule's matches (leaves of its condition) the signal passes
    signal: Signal


@dataclass
class _Group:
    hits: list[_Hit] = field(default_factory=list)
    newest_ts: datetime | None = None
    newest_at: datetime | None = None  # hub time the newest signal was received
    open: bool = False
    # Event time from which signals belong to the open incident (the start of the window
    # it fired in): a late signal from before it is not part of it.
    opened_from: datetime | None = None
    held: set[int] = field(default_factory=set)  # arrival numbers of the signals it holds
    quiet_until: datetime | None = None  # hub time: cooldown after a close

    def clock(self, now: datetime) -> datetime | None:
        if self.newest_ts is None or self.newest_at is None:
            return None
        return self.newest_ts + max(now - self.newest_at, _ZERO)

    def idle(self, now: datetime) -> bool:
        return (
            not self.hits
            and not self.open
            and (self.quiet_until is None or now >= self.quiet_until)
        )


@dataclass
class _Loaded:
    rule: Rule
    version: int
    within: timedelta
    hold: timedelta
    confirm_window: timedelta
    cooldown: timedelta
    condition: Evaluator
    groups: dict[str, _Group] = field(default_factory=dict)

    def keeps(self, lateness: timedelta) -> timedelta:
        """How far behind a group's clock its signals still matter."""
        return self.within + self.hold + lateness


class Engine:
    def __init__(
        self,
        rules: Iterable[tuple[Rule, int]] = (),
        *,
        lateness: timedelta = LATENESS,
        silences: Iterable[Silence] = (),
    ) -> None:
        self.lateness = lateness
        self.muting = Muting(silences)
        self.late_signals = 0  # signals older than `lateness` behind their group's newest
        self._rules: dict[str, _Loaded] = {}
        # Un-muted signals that may confirm, with their arrival numbers.
        self._recent: deque[tuple[int, Signal]] = deque()
        self._confirm_kinds: frozenset[str] = frozenset()
        self._confirm_window = _ZERO
        self._watermark: datetime | None = None
        self._order = 0
        for rule, version in rules:
            self.load(rule, version)

    # --- rules -----------------------------------------------------------------------------

    def load(self, rule: Rule, version: int) -> None:
        """Add or replace a rule. A changed rule starts with empty windows; which of its
        groups have an open incident (or are cooling down) carries over."""
        previous = self._rules.get(rule.id)
        loaded = _Loaded(
            rule,
            version,
            parse_duration(rule.threshold.within),
            parse_duration(rule.for_),
            parse_duration(rule.confirm.within) if rule.confirm else _ZERO,
            parse_duration(rule.cooldown),
            Evaluator(rule.match),
        )
        if previous:
            for key, group in previous.groups.items():
                if group.open or group.quiet_until:
                    loaded.groups[key] = _Group(open=group.open, quiet_until=group.quiet_until)
        self._rules[rule.id] = loaded
        self._confirm_settings()

    def remove(self, rule_id: str) -> None:
        self._rules.pop(rule_id, None)
        self._confirm_settings()

    def rule_ids(self) -> list[str]:
        return list(self._rules)

    def version_of(self, rule_id: str) -> int | None:
        loaded = self._rules.get(rule_id)
        return loaded.version if loaded else None

    def longest_memory(self) -> timedelta:
        """How much history the rules' windows can use (for rebuilding them)."""
        return max((r.keeps(self.lateness) for r in self._rules.values()), default=_ZERO)

    def longest_cooldown(self) -> timedelta:
        return max((r.cooldown for r in self._rules.values()), default=_ZERO)

    def set_silences(self, silences: Iterable[Silence]) -> None:
        self.muting.silences = list(silences)

    def _confirm_settings(self) -> None:
        confirms = [r.rule.confirm for r in self._rules.values() if r.rule.confirm]
        self._confirm_kinds = frozenset(k for c in confirms for k in c.kind)
        self._confirm_window = max((r.confirm_window for r in self._rules.values()), default=_ZERO)

    # --- what the incidents table says -------------------------------------------------------

    def closed(self, rule_id: str, key: str, at: datetime) -> None:
        """The incident of (rule, key) was closed at hub time `at`: the group starts afresh,
        quiet for the rule's cooldown, and the next firing opens a new incident."""
        loaded = self._rules.get(rule_id)
        if loaded is None:
            return
        quiet = at + loaded.cooldown if loaded.cooldown else None
        loaded.groups[key] = _Group(quiet_until=quiet)

    def mark_open(self, open_keys: set[tuple[str, str]]) -> None:
        """Align with the incidents table: which (rule, key) have an open incident."""
        for rule_id, loaded in self._rules.items():
            for key, group in loaded.groups.items():
                group.open = (rule_id, key) in open_keys
            for r, key in open_keys:
                if r == rule_id and key not in loaded.groups:
                    loaded.groups[key] = _Group(open=True)

    # --- signals and time ------------------------------------------------------------------

    def process(self, signal: Signal, now: datetime) -> list[Decision]:
        """Feed one signal, received at hub time `now`; returns what to do about it."""
        self._order += 1
        self.muting.observe(signal)
        if self._watermark is None or signal.ts > self._watermark:
            self._watermark = signal.ts
        recoveries = self._recoveries(signal, now)  # good news is never muted
        if self.muting.muted(signal):
            return recoveries
        self._remember(self._order, signal)
        decisions = recoveries
        # A signal that corroborates an open incident (a camera's smoke in the building of a
        # smoke alarm) is that incident's evidence: it joins incidents already open for it but
        # opens no other one for the same fire.
        may_open = not self._corroborated(self._order, signal)
        for loaded in self._rules.values():
            decisions += self._evaluate(loaded, signal, now, may_open=may_open)
        attached = {(d.rule.id, d.key) for d in decisions if d.signal is signal}
        decisions += [
            d
            for d in self._confirmations(self._order, signal)
            if (d.rule.id, d.key) not in attached
        ]
        return decisions

    def advance(self, now: datetime) -> list[Decision]:
        """Let hub time pass without signals: a condition held for its `for` fires."""
        decisions = []
        for loaded in self._rules.values():
            for key, group in list(loaded.groups.items()):
                self._prune(loaded, group, group.clock(now))
                if group.idle(now):
                    del loaded.groups[key]
                    continue
                if not loaded.hold or group.open or not group.hits or not loaded.rule.enabled:
                    continue
                if group.quiet_until and now < group.quiet_until:
                    continue
                decision = self._fire(loaded, key, group, now)
                if decision:
                    decisions.append(decision)
        return decisions

    def next_deadline(self) -> datetime | None:
        """The hub time at which the earliest pending `for` fires if nothing else arrives
        (in the past when no tick has come since it fell due)."""
        due: list[datetime] = []
        for loaded in self._rules.values():
            if not loaded.hold or not loaded.rule.enabled:
                continue
            for group in loaded.groups.values():
                if group.open or group.newest_ts is None or group.newest_at is None:
                    continue
                for start, end in _holding(group.hits, loaded):
                    fires = start + loaded.hold
                    if fires < end:
                        at = group.newest_at + (fires - group.newest_ts)
                        if group.quiet_until:
                            at = max(at, group.quiet_until)
                        due.append(at)
                        break
        return min(due, default=None)

    def _recoveries(self, signal: Signal, now: datetime) -> list[Decision]:
        """Open incidents that `signal` recovers: its rule's `recover` kind, from the same
        group; one that closes starts the group afresh, as a close by a person would."""
        found = []
        for loaded in self._rules.values():
            rule = loaded.rule
            recover = rule.recover
            if recover is None or signal.kind not in recover.kind or not rule.enabled:
                continue
            if not signal.area.startswith(rule.area_prefix):
                continue
            key = group_key(rule, signal)
            group = loaded.groups.get(key)
            if group is None or not group.open:
                continue
            found.append(
                Decision(
                    rule,
                    loaded.version,
                    key,
                    signal,
                    False,
                    rule.incident.priority,
                    (signal,),
                    recovers=True,
                )
            )
            if recover.action == "close":
                self.closed(rule.id, key, now)
        return found

    # --- per rule ----------------------------------------------------------------------------

    def _evaluate(
        self, loaded: _Loaded, signal: Signal, now: datetime, *, may_open: bool = True
    ) -> list[Decision]:
        rule = loaded.rule
        if not rule.enabled:
            return []
        passed = loaded.condition.passed(signal)
        if not passed or not (rule.schedule is None or rule.schedule.contains(signal.ts)):
            return []
        key = group_key(rule, signal)
        if not may_open and not (key in loaded.groups and loaded.groups[key].open):
            return []
        group = loaded.groups.setdefault(key, _Group())
        if group.quiet_until is not None:
            if now < group.quiet_until:
                return []
            group.quiet_until = None
        in_order = group.newest_ts is None or signal.ts >= group.newest_ts
        counts_at = signal.ts
        clock = group.clock(now)
        if clock is not None and signal.ts < clock - self.lateness:
            # Later than the tolerance: it still counts (an alarm is never dropped for a
            # device's clock), as if it had happened at the edge of the tolerance.
            self.late_signals += 1
            counts_at = clock - self.lateness
        hit = _Hit(counts_at, self._order, passed, signal)
        bisect.insort(group.hits, hit, key=lambda h: (h.ts, h.order))
        if in_order:
            group.newest_ts, group.newest_at = signal.ts, now
        self._prune(loaded, group, group.clock(now))
        if group.open:
            return self._attach(loaded, key, group, hit, in_order, now)
        opened = self._fire(loaded, key, group, now)
        return [opened] if opened else []

    def _attach(
        self, loaded: _Loaded, key: str, group: _Group, hit: _Hit, in_order: bool, now: datetime
    ) -> list[Decision]:
        """A signal for an open incident, and what else it brings in: a late signal can
        complete an earlier window than the one the incident opened in, and the incident
        then reaches back to it (as it would have, had the signals come in order)."""
        if group.opened_from is None:  # open since before this engine started
            taken = [hit]
        else:
            if not in_order:
                start = self._first_firing(loaded, group, group.clock(now))
                if start is not None:
                    group.opened_from = min(group.opened_from, start - loaded.within)
            taken = [
                h for h in group.hits if h.ts > group.opened_from and h.order not in group.held
            ]
        decisions = [
            self._attached(loaded, key, h.signal, self._priority(loaded, [h.signal])) for h in taken
        ]
        # Corroborating signals seen before these, that the incident does not hold yet.
        for order, confirming in self._confirming(loaded, [h.signal for h in taken]):
            if order not in group.held:
                group.held.add(order)
                assert loaded.rule.confirm is not None
                decisions.append(
                    self._attached(loaded, key, confirming, loaded.rule.confirm.priority)
                )
        group.held.update(h.order for h in taken)
        return decisions

    @staticmethod
    def _attached(loaded: _Loaded, key: str, signal: Signal, priority: Priority) -> Decision:
        return Decision(loaded.rule, loaded.version, key, signal, False, priority, (signal,))

    def _first_firing(
        self, loaded: _Loaded, group: _Group, clock: datetime | None
    ) -> datetime | None:
        """The start of the first window in which the rule fires by the group's clock."""
        if clock is None:
            return None
        for start, end in _holding(group.hits, loaded):
            if start + loaded.hold < end and start + loaded.hold <= clock:
                return start
        return None

    def _fire(self, loaded: _Loaded, key: str, group: _Group, now: datetime) -> Decision | None:
        """Open when the condition has held for `for` by the group's clock."""
        start = self._first_firing(loaded, group, group.clock(now))
        if start is None:
            return None
        # Every matching signal from the window's start on: those that made it fire and any
        # that arrived meanwhile, as they would have attached in order.
        group.opened_from = start - loaded.within
        chosen = [h for h in group.hits if h.ts > group.opened_from]
        signals = [h.signal for h in chosen]
        priority = self._priority(loaded, signals)
        # The signals that corroborated it belong to it too (a camera's picture, say).
        confirming = self._confirming(loaded, signals)
        group.held = {h.order for h in chosen} | {order for order, _ in confirming}
        group.open = True
        return Decision(
            loaded.rule,
            loaded.version,
            key,
            chosen[-1].signal,
            True,
            priority,
            tuple(signals + [c for _, c in confirming]),
        )

    def _prune(self, loaded: _Loaded, group: _Group, clock: datetime | None) -> None:
        if clock is None or not group.hits:
            return
        oldest = clock - loaded.keeps(self.lateness)
        cut = bisect.bisect_left(group.hits, oldest, key=lambda h: h.ts)
        cut = max(cut, len(group.hits) - MAX_HITS)
        if cut > 0:
            del group.hits[:cut]
            if group.held:
                group.held &= {h.order for h in group.hits}

    def _priority(self, loaded: _Loaded, signals: list[Signal]) -> Priority:
        """The confirmation's priority when a corroborating signal was seen at the same
        place within the window, before or after; else the rule's own."""
        confirm = loaded.rule.confirm
        if confirm is not None and self._confirming(loaded, signals):
            return confirm.priority
        return loaded.rule.incident.priority

    def _confirming(self, loaded: _Loaded, signals: list[Signal]) -> list[tuple[int, Signal]]:
        """The recent signals (with their arrival numbers) that corroborate any of
        `signals`, by the rule's `confirm`."""
        confirm, window = loaded.rule.confirm, loaded.confirm_window
        if confirm is None or not signals:
            return []
        found = []
        for order, other in self._recent:
            if other.kind not in confirm.kind:
                continue
            place = other.place(confirm.same)
            if place is not None and any(
                s.place(confirm.same) == place and abs(other.ts - s.ts) <= window for s in signals
            ):
                found.append((order, other))
        return found

    def _confirmations(self, order: int, signal: Signal) -> list[Decision]:
        """A confirming signal raises every open incident it corroborates."""
        decisions = []
        for loaded, key, group in self._corroborating(order, signal):
            assert loaded.rule.confirm is not None
            group.held.add(order)
            decisions.append(self._attached(loaded, key, signal, loaded.rule.confirm.priority))
        return decisions

    def _corroborated(self, order: int, signal: Signal) -> bool:
        return next(self._corroborating(order, signal), None) is not None

    def _corroborating(self, order: int, signal: Signal) -> Iterator[tuple[_Loaded, str, _Group]]:
        """The open incidents `signal` corroborates: those of a rule whose `confirm` takes its
        kind, with a signal of their own at the same place within the window."""
        for loaded in self._rules.values():
            confirm = loaded.rule.confirm
            if confirm is None or signal.kind not in confirm.kind:
                continue
            place = signal.place(confirm.same)
            if place is None:
                continue
            window = loaded.confirm_window
            for key, group in loaded.groups.items():
                if (
                    group.open
                    and order not in group.held
                    and any(
                        h.order in group.held
                        and abs(h.ts - signal.ts) <= window
                        and h.signal.place(confirm.same) == place
                        for h in group.hits
                    )
                ):
                    yield loaded, key, group

    def _remember(self, order: int, signal: Signal) -> None:
        if signal.kind not in self._confirm_kinds:
            return
        self._recent.append((order, signal))
        assert self._watermark is not None
        oldest = self._watermark - self._confirm_window - self.lateness
        while self._recent and self._recent[0][1].ts < oldest:
            self._recent.popleft()


def _holding(hits: list[_Hit], loaded: _Loaded) -> list[tuple[datetime, datetime]]:
    """The event-time intervals [start, end) in which the rule's threshold holds: at least
    `count` matching signals in the window (each counts from its `ts` for `within`), and the
    condition met by the signals in it (`rules.conditions`)."""
    needed = loaded.rule.threshold.count
    edges: list[tuple[datetime, int, frozenset[int]]] = []
    for hit in hits:
        edges.append((hit.ts, 1, hit.passed))
        edges.append((hit.ts + loaded.within, -1, hit.passed))
    edges.sort(key=lambda e: (e[0], e[1]))  # at one instant, leaving comes before arriving
    count = 0
    per_leaf: Counter[int] = Counter()
    passed: set[int] = set()  # the matches some signal in the window passes
    found: list[tuple[datetime, datetime]] = []
    start: datetime | None = None
    i = 0
    while i < len(edges):
        instant = edges[i][0]
        while i < len(edges) and edges[i][0] == instant:
            _, step, leaves = edges[i]
            count += step
            for leaf in leaves:
                per_leaf[leaf] += step
                if per_leaf[leaf] > 0:
                    passed.add(leaf)
                else:
                    passed.discard(leaf)
            i += 1
        holds = count >= needed and loaded.condition.met(passed)
        if holds and start is None:
            start = instant
        elif not holds and start is not None:
            found.append((start, instant))
            start = None
    return found


def group_fields(rule: Rule) -> list[str]:
    """The fields that make a rule's group key: always the area first, then `group_by` with
    a building meaning its site too."""
    fields = ["area"]
    for name in rule.group_by:
        for part in _EXPANDS.get(name, (name,)):
            if part not in fields:
                fields.append(part)
    return fields


def group_key(rule: Rule, signal: Signal) -> str:
    """E.g. `area=440311001002|site=楼村花园|building=3栋`."""
    parts = []
    for name in group_fields(rule):
        value = signal.attrs.get("zone") if name == "zone" else getattr(signal, name)
        parts.append(f"{name}={value if value is not None else ''}")
    return "|".join(parts)
