"""Match expressions (design §4): the one evaluator that live evaluation and backtests share.

A condition is judged against the signals of one group within the window, never against a
single signal on its own:

- a match (`kind` and `where`) is met when at least one of those signals passes it;
- `any` is met when at least one of its branches is met;
- `all` is met when every one of its branches is met, each by signals that pass that
  branch's own `where` (one signal may meet several branches).

This holds at every level of nesting: an `all` inside an `any` means exactly what an `all` at
the top means. A signal matters to a rule when it passes at least one of the rule's matches
(its leaves): only such signals enter a group's window, count towards `threshold.count` and
belong to the incident. Conditions are monotone (more signals never un-meet one), which the
engine's windows rely on.
"""

from __future__ import annotations

from collections.abc import Iterable, Set
from dataclasses import dataclass

from hub.contracts import Signal
from rules.model import AnyOf, Condition, Match


@dataclass(frozen=True, slots=True)
class _Branches:
    every: bool  # `all` when true, `any` when false
    parts: tuple[_Node, ...]


_Node = int | _Branches  # a leaf (its index among the matches) or `any`/`all` of nodes


class Evaluator:
    """A condition, compiled: which of its matches a signal passes, and whether the matches
    that some signals passed meet the condition."""

    __slots__ = ("_root", "leaves", "needs_all")

    def __init__(self, condition: Condition) -> None:
        leaves: list[Match] = []
        self._root = _compile(condition, leaves)
        self.leaves: tuple[Match, ...] = tuple(leaves)
        # Without an `all` anywhere, passing any match meets the condition.
        self.needs_all = _has_all(self._root)

    def passed(self, signal: Signal) -> frozenset[int]:
        """The indexes of the matches (leaves) that `signal` passes; empty when the signal
        does not matter to the rule."""
        return frozenset(i for i, leaf in enumerate(self.leaves) if passes(leaf, signal))

    def met(self, passed: Set[int]) -> bool:
        """Whether the condition is met by signals that between them passed the matches
        `passed`."""
        if not self.needs_all:
            return bool(passed)
        return _met(self._root, passed)

    def met_by(self, signals: Iterable[Signal]) -> bool:
        """Whether these signals, taken together, meet the condition."""
        passed: set[int] = set()
        for signal in signals:
            passed |= self.passed(signal)
        return self.met(passed)


def _compile(condition: Condition, leaves: list[Match]) -> _Node:
    if isinstance(condition, Match):
        leaves.append(condition)
        return len(leaves) - 1
    if isinstance(condition, AnyOf):
        return _Branches(False, tuple(_compile(branch, leaves) for branch in condition.any))
    return _Branches(True, tuple(_compile(branch, leaves) for branch in condition.all))


def _has_all(node: _Node) -> bool:
    if isinstance(node, int):
        return False
    return node.every or any(_has_all(part) for part in node.parts)


def _met(node: _Node, passed: Set[int]) -> bool:
    if isinstance(node, int):
        return node in passed
    if node.every:
        return all(_met(part, passed) for part in node.parts)
    return any(_met(part, passed) for part in node.parts)


def passes(match: Match, signal: Signal) -> bool:
    """Whether one signal passes one match: its kind, and every field of its `where`."""
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
    return all(_tag_text(signal.tags.get(k)) == v for k, v in where.tags.items())


def _tag_text(value: object) -> str | None:
    """A registry tag as a rule writes it: `true`, `3`, `acme`."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
