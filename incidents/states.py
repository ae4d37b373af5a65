"""The incident loop (design §5): which action moves which state where."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    REPORTED = "reported"
    ACCEPTED = "accepted"
    DISPATCHED = "dispatched"
    HANDLING = "handling"
    RESOLVED = "resolved"
    VERIFIED = "verified"
    CLOSED = "closed"


OPEN_STATUSES = [s for s in Status if s is not Status.CLOSED]


class Action(StrEnum):
    ACCEPT = "accept"
    DISPATCH = "dispatch"
    START = "start"
    RESOLVE = "resolve"
    VERIFY = "verify"
    REJECT = "reject"  # verification failed: back to handling
    CLOSE = "close"
    RATE = "rate"
    COMMENT = "comment"
    ACKNOWLEDGE = "acknowledge"  # the dispatched unit has the message: no change of state
    SUMMON = "summon"  # 吹哨: several units at once, each to report in
    REPORT_IN = "report_in"  # 报到: a summoned unit is at the scene
    RATE_UNIT = "rate_unit"  # the summoning level rates a summoned unit, after close
    FLAG_UNIT = "flag_unit"  # 日常哨's negative list for a summoned unit, after close
    RATE_WHISTLE = "rate_whistle"  # a summoned unit rates the whistle it got


class CloseReason(StrEnum):
    RESOLVED = "resolved"
    FALSE_ALARM = "false_alarm"
    DUPLICATE = "duplicate"
    NOT_RESPONSIBLE = "not_responsible"


TRANSITIONS: dict[tuple[Status, Action], Status] = {
    (Status.REPORTED, Action.ACCEPT): Status.ACCEPTED,
    (Status.ACCEPTED, Action.DISPATCH): Status.DISPATCHED,
    (Status.DISPATCHED, Action.DISPATCH): Status.DISPATCHED,  # re-dispatch to another unit
    (Status.DISPATCHED, Action.START): Status.HANDLING,
    (Status.HANDLING, Action.RESOLVE): Status.RESOLVED,
    (Status.RESOLVED, Action.VERIFY): Status.VERIFIED,
    (Status.RESOLVED, Action.REJECT): Status.HANDLING,
}
# `close` (with a reason) is allowed from every state but closed; `comment` from every state;
# `rate` only once, when closed.


SUMMON_ACTIONS = frozenset(
    {Action.SUMMON, Action.REPORT_IN, Action.RATE_UNIT, Action.FLAG_UNIT, Action.RATE_WHISTLE}
)


def _summon_step(status: Status, action: Action) -> Status | None:
    """吹哨报到: a summon moves an accepted incident on as a dispatch does; report-ins while it is
    open; ratings and flags once it is closed; a unit's rating of its whistle any time."""
    match action:
        case Action.SUMMON:
            if status is Status.ACCEPTED:
                return Status.DISPATCHED
            return status if status in (Status.DISPATCHED, Status.HANDLING) else None
        case Action.REPORT_IN:
            return None if status is Status.CLOSED else status
        case Action.RATE_UNIT | Action.FLAG_UNIT:
            return Status.CLOSED if status is Status.CLOSED else None
    return status


def next_status(status: Status, action: Action) -> Status | None:
    """Where `action` takes an incident in `status`; None when the state does not allow it."""
    if action is Action.COMMENT:
        return status
    if action in SUMMON_ACTIONS:
        return _summon_step(status, action)
    if action is Action.ACKNOWLEDGE:
        return status if status in (Status.DISPATCHED, Status.HANDLING) else None
    if action is Action.CLOSE:
        return None if status is Status.CLOSED else Status.CLOSED
    if action is Action.RATE:
        return Status.CLOSED if status is Status.CLOSED else None
    return TRANSITIONS.get((status, action))


def allowed_actions(status: Status) -> list[Action]:
    return [a for a in Action if next_status(status, a) is not None]
