"""People's actions on incidents: accept, dispatch, start, resolve, verify, reject, close,
rate, comment, and 吹哨报到's summon, report_in, rate_unit, flag_unit, rate_whistle; each an
audit row, a 409 where the state does not allow it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import DictRow

from devices.models import Unit
from devices.units import get_unit
from hub.contracts import Priority
from hub.errors import Conflict, Forbidden, Invalid, NotFound
from incidents import summons
from incidents.events import record_change
from incidents.models import ActionIn, Incident
from incidents.sla import Sla
from incidents.states import (
    SUMMON_ACTIONS,
    Action,
    CloseReason,
    Status,
    allowed_actions,
    next_status,
)
from incidents.store import COLUMNS, get_incident, record_audit, with_summons
from incidents.summons import summon_step


async def apply_action(
    conn: AsyncConnection[DictRow],
    incident_id: int,
    action: ActionIn,
    *,
    actor: str,
    scope: str,
    now: datetime,
    sla: Sla | None = None,
) -> Incident:
    """Move an incident through the loop; 409 when its state does not allow the action.
    `sla` gives a summon its report-in time (the defaults without it)."""
    current = await get_incident(conn, incident_id, scope=scope, for_update=True)
    target = next_status(current.status, action.action)
    if target is None:
        allowed = ", ".join(a.value for a in allowed_actions(current.status))
        raise Conflict(
            f"cannot {action.action.value} an incident that is {current.status.value}"
            f" (allowed: {allowed})",
            field="action",
        )
    changes: dict[str, Any] = {"status": target.value, "updated_at": now}
    match action.action:
        case Action.ACCEPT:
            changes["accepted_at"] = now
        case Action.DISPATCH:
            unit = await dispatchable_unit(conn, action.unit_id, current, scope=scope)
            changes["unit_id"] = unit.id
        case Action.CLOSE:
            reason = action.reason or (
                CloseReason.RESOLVED if current.status is Status.VERIFIED else None
            )
            if reason is None:
                raise Invalid(
                    "close needs a reason: resolved, false_alarm, duplicate, not_responsible",
                    field="reason",
                )
            changes |= {"closed_at": now, "close_reason": reason.value}
        case Action.RATE:
            if not still_to_do(current, Action.RATE, None):
                raise Conflict("this incident was rated already", field="rating")
            changes["rating"] = action.rating
    summoned: dict[str, Any] = {}
    if action.action in SUMMON_ACTIONS:
        level = scope or current.escalated_to or current.area
        whistle = _whistle(current.priority, action.whistle)
        if whistle is not current.priority:
            changes["priority"] = whistle.value
        report_by = now + (sla or Sla()).summon[whistle]
        summoned = await summon_step(
            conn,
            current,
            action,
            actor=actor,
            level=level,
            report_by=report_by,
            scope=scope,
            now=now,
        )
        if action.action is Action.SUMMON:
            summoned["whistle"] = whistle.value
        if action.action is Action.SUMMON and action.lead is not None:
            changes["unit_id"] = action.lead
    elif action.action is Action.ACKNOWLEDGE and action.unit_id is not None:
        await summons.acknowledge(conn, incident_id, action.unit_id, now)
    return await _move(
        conn, current, action, target, changes, actor=actor, now=now, summoned=summoned
    )


# What a reporter's own report needs before each step: a report nobody has dispatched is
# accepted, given to the reporter (its unit, where it has one) and started, step by step.
_TAKING_ON = {
    Status.REPORTED: Action.ACCEPT,
    Status.ACCEPTED: Action.DISPATCH,
    Status.DISPATCHED: Action.START,
}


def taking_on(status: Status, wanted: Action) -> list[tuple[Action, Status]]:
    """The steps (each with the state it leads to) that a reporter's own report in `status`
    is taken on by before `wanted`; none where `wanted` applies as it is."""
    steps: list[tuple[Action, Status]] = []
    while next_status(status, wanted) is None and status in _TAKING_ON:
        step = _TAKING_ON[status]
        target = next_status(status, step)
        assert target is not None
        steps.append((step, target))
        status = target
    return steps


def still_to_do(incident: Incident, action: Action, unit_id: str | None) -> bool:
    """Whether the incident's records leave `action` to do: the incident is rated once; a
    summoned unit reports in, is rated and rates its whistle once each (`unit_id`'s own record
    where a unit acts, any unit's where a level records for one); flags are for 日常哨."""
    summons = [s for s in incident.summons if unit_id is None or s.unit_id == unit_id]
    match action:
        case Action.RATE:
            return incident.rating is None
        case Action.REPORT_IN:
            return any(s.reported_at is None for s in summons)
        case Action.RATE_UNIT:
            return any(s.rating is None for s in summons)
        case Action.RATE_WHISTLE:
            return any(s.whistle_rating is None for s in summons)
        case Action.FLAG_UNIT:
            return bool(summons) and incident.priority is Priority.ROUTINE
    return True


async def take_on(
    conn: AsyncConnection[DictRow],
    incident_id: int,
    wanted: Action,
    *,
    actor: str,
    unit_id: str | None,
    scope: str,
    now: datetime,
) -> None:
    """A grid worker (`actor`, of unit `unit_id`) works what was dispatched to its unit, and
    what it reported while no other unit has it or was summoned to it (design §6): before
    `wanted`, the steps its own undispatched report still lacks (accept, dispatch to the
    worker's unit, start) are taken in its name, each an audit row and an event, so that
    `wanted` then applies. Judged on the locked row, so that a dispatch or a summon a moment
    earlier is not overtaken; 403 otherwise."""
    current = await get_incident(conn, incident_id, scope=scope, for_update=True)
    if unit_id is not None and current.unit_id == unit_id:
        return
    if current.reported_by != actor or current.unit_id is not None or current.summons:
        raise Forbidden("only the unit it was dispatched to works this incident")
    for step, target in taking_on(current.status, wanted):
        changes: dict[str, Any] = {"status": target.value, "updated_at": now}
        if step is Action.ACCEPT:
            changes["accepted_at"] = now
        elif step is Action.DISPATCH:
            changes["unit_id"] = unit_id
        note = "taken on by its reporter"
        current = await _move(
            conn,
            current,
            ActionIn(action=step, unit_id=unit_id, note=note),
            target,
            changes,
            actor=actor,
            now=now,
        )


async def _move(
    conn: AsyncConnection[DictRow],
    current: Incident,
    action: ActionIn,
    target: Status,
    changes: dict[str, Any],
    *,
    actor: str,
    now: datetime,
    summoned: dict[str, Any] | None = None,
) -> Incident:
    """Write one step: the incident's row, its audit row (with what a summon recorded, in
    `summoned`), a 日常哨's flags at its close and (but for a comment) its event."""
    incident_id = current.id
    assignments = ", ".join(f"{name} = %({name})s" for name in changes)
    cur = await conn.execute(
        f"UPDATE incidents SET {assignments} WHERE id = %(id)s RETURNING {COLUMNS}",
        {**changes, "id": incident_id},
    )
    row = await cur.fetchone()
    assert row is not None
    updated = Incident.model_validate(row)
    data = summoned or {
        k: v
        for k, v in {
            "unit_id": changes.get("unit_id"),
            "reason": action.reason,
            "rating": action.rating,
        }.items()
        if v is not None
    }
    await record_audit(
        conn,
        incident_id,
        actor,
        action.action.value,
        current.status,
        target,
        now,
        note=action.note or action.comment,
        data=data,
    )
    if action.action is Action.CLOSE:
        await _flag_at_close(conn, updated, target, now)
    if action.action is not Action.COMMENT:
        await record_change(
            conn, "incident.updated", updated, at=now, action=action.action.value, data=data
        )
    [answer] = await with_summons(conn, [updated])
    return answer


_RANK = {Priority.EMERGENCY: 0, Priority.MAJOR: 1, Priority.ROUTINE: 2}


def _whistle(current: Priority, blown: Priority | None) -> Priority:
    """The whistle a summon blows: the incident's priority, or a higher one it names."""
    return blown if blown is not None and _RANK[blown] < _RANK[current] else current


async def _flag_at_close(
    conn: AsyncConnection[DictRow], incident: Incident, status: Status, now: datetime
) -> None:
    """The negative-list flags a 日常哨 earns at its close, each in the audit."""
    for flagged in await summons.flags_at_close(conn, incident, now):
        await record_audit(
            conn, incident.id, "shaobing", Action.FLAG_UNIT.value, status, status, now, data=flagged
        )


async def dispatchable_unit(
    conn: AsyncConnection[DictRow], unit_id: str | None, incident: Incident, *, scope: str
) -> Unit:
    """The unit to send: the one named, else the proposal. It must lie in the caller's area and
    in the incident's district; any other unit reads as not there, whatever its state."""
    chosen = unit_id or incident.suggested_unit_id
    if chosen is None:
        raise Invalid("dispatch needs unit_id (no unit was proposed)", field="unit_id")
    try:
        unit = await get_unit(conn, chosen, scope=scope)
    except NotFound:
        unit = None
    if unit is None or not unit.area.startswith(incident.area[:6]):
        raise Invalid(f"no unit {chosen} can be dispatched to this incident", field="unit_id")
    if not unit.on_duty:
        raise Invalid(f"unit {unit.id} is off duty", field="unit_id")
    return unit
