"""吹哨报到: a whistle summons several units (departments) to one incident; each must report in
(报到) by a time its whistle sets, is raised as overdue (督办) when it does not, and is rated
afterwards, as it rates the whistle. Every change is written in the transaction of the action
that makes it, with its audit row and its event (the notifier's outbox)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import DictRow

from devices.models import Unit
from devices.units import get_unit
from hub.errors import Conflict, Forbidden, Invalid, NotFound
from incidents.models import YELLOW_AT, ActionIn, Incident, Light, Summon
from incidents.states import Action

_COLUMNS = (
    "incident_id, unit_id, lead, summoned_by, summoned_level, summoned_at, report_by,"
    " acknowledged_at, reported_at, overdue_at, rating, rating_comment, flags, whistle_rating,"
    " whistle_comment"
)


def light_of(share: float, overdue: bool) -> Light:
    """Green until 80 % of the allowed time, yellow to 100 %, red after (or once overdue)."""
    if overdue or share > 1:
        return "red"
    return "yellow" if share >= YELLOW_AT else "green"


def _summon(row: dict[str, Any], now: datetime) -> Summon:
    allowed = (row["report_by"] - row["summoned_at"]).total_seconds()
    until = row["reported_at"] or now
    share = (until - row["summoned_at"]).total_seconds() / allowed if allowed > 0 else 1.0
    late = row["reported_at"] is None and (row["overdue_at"] is not None or now > row["report_by"])
    if row["reported_at"] is not None:
        status = "reported"
    elif late:
        status = "overdue"
    else:
        status = "acknowledged" if row["acknowledged_at"] else "summoned"
    return Summon.model_validate({**row, "status": status, "light": light_of(share, late)})


async def summons_by_incident(
    conn: AsyncConnection[DictRow], incident_ids: list[int], now: datetime
) -> dict[int, list[Summon]]:
    """Each incident's 报到 records, in the order they were summoned."""
    if not incident_ids:
        return {}
    cur = await conn.execute(
        f"SELECT {_COLUMNS} FROM incident_summons WHERE incident_id = ANY(%s)"
        " ORDER BY incident_id, summoned_at, unit_id",
        (incident_ids,),
    )
    found: dict[int, list[Summon]] = {}
    for row in await cur.fetchall():
        found.setdefault(row["incident_id"], []).append(_summon(row, now))
    return found


async def is_summoned(conn: AsyncConnection[DictRow], incident_id: int, unit_id: str) -> bool:
    cur = await conn.execute(
        "SELECT 1 FROM incident_summons WHERE incident_id = %s AND unit_id = %s",
        (incident_id, unit_id),
    )
    return await cur.fetchone() is not None


def reachable(unit_area: str, scope: str, incident_area: str) -> bool:
    """A unit a caller may summon: in the caller's area or over it (a district's department,
    for a street or community), and in the incident's district or over it (a city's)."""
    mine = unit_area.startswith(scope) or scope.startswith(unit_area)
    return mine and (incident_area.startswith(unit_area) or unit_area.startswith(incident_area[:6]))


async def summonable_units(
    conn: AsyncConnection[DictRow], unit_ids: list[str], incident: Incident, *, scope: str
) -> list[Unit]:
    """The units named, each reachable (above) and on duty; any other reads as not there
    (422), whatever it is."""
    found = []
    for unit_id in dict.fromkeys(unit_ids):
        try:
            unit = await get_unit(conn, unit_id, scope="")
        except NotFound:
            unit = None
        if unit is None or not reachable(unit.area, scope, incident.area):
            raise Invalid(f"no unit {unit_id} can be summoned to this incident", field="unit_ids")
        if not unit.on_duty:
            raise Invalid(f"unit {unit.id} is off duty", field="unit_ids")
        found.append(unit)
    return found


async def summon(
    conn: AsyncConnection[DictRow],
    incident: Incident,
    action: ActionIn,
    *,
    actor: str,
    level: str,
    report_by: datetime,
    scope: str,
    now: datetime,
) -> dict[str, Any]:
    """Summon the units (a unit summoned before keeps its record); what the audit says."""
    assert action.unit_ids is not None
    units = await summonable_units(conn, action.unit_ids, incident, scope=scope)
    added = []
    for unit in units:
        cur = await conn.execute(
            "INSERT INTO incident_summons (incident_id, unit_id, summoned_by, summoned_level,"
            " summoned_at, report_by) VALUES (%s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (incident_id, unit_id) DO NOTHING RETURNING unit_id",
            (incident.id, unit.id, actor, level, now, report_by),
        )
        if await cur.fetchone() is not None:
            added.append(unit.id)
    if action.lead is not None:
        await conn.execute(
            "UPDATE incident_summons SET lead = (unit_id = %s) WHERE incident_id = %s",
            (action.lead, incident.id),
        )
    data: dict[str, Any] = {"unit_ids": added, "report_by": report_by.isoformat()}
    if action.lead is not None:
        data["lead"] = action.lead
    return data


async def _record(
    conn: AsyncConnection[DictRow], incident_id: int, unit_id: str, *, lock: bool = True
) -> dict[str, Any]:
    cur = await conn.execute(
        f"SELECT {_COLUMNS} FROM incident_summons WHERE incident_id = %s AND unit_id = %s"
        + (" FOR UPDATE" if lock else ""),
        (incident_id, unit_id),
    )
    row = await cur.fetchone()
    if row is None:
        raise Invalid(f"unit {unit_id} was not summoned to this incident", field="unit_id")
    return row


async def _set(
    conn: AsyncConnection[DictRow], incident_id: int, unit_id: str, **changes: Any
) -> None:
    assignments = ", ".join(f"{name} = %({name})s" for name in changes)
    await conn.execute(
        f"UPDATE incident_summons SET {assignments}"
        " WHERE incident_id = %(incident_id)s AND unit_id = %(unit_id)s",
        {**changes, "incident_id": incident_id, "unit_id": unit_id},
    )


async def report_in(
    conn: AsyncConnection[DictRow], incident_id: int, unit_id: str, now: datetime
) -> dict[str, Any]:
    row = await _record(conn, incident_id, unit_id)
    if row["reported_at"] is not None:
        raise Conflict(f"unit {unit_id} reported in already", field="unit_id")
    await _set(
        conn, incident_id, unit_id, reported_at=now, acknowledged_at=row["acknowledged_at"] or now
    )
    return {"unit_id": unit_id, "on_time": now <= row["report_by"]}


async def acknowledge(
    conn: AsyncConnection[DictRow], incident_id: int, unit_id: str, now: datetime
) -> None:
    """A summoned unit has the message (a unit that was only dispatched has no record)."""
    await conn.execute(
        "UPDATE incident_summons SET acknowledged_at = %s"
        " WHERE incident_id = %s AND unit_id = %s AND acknowledged_at IS NULL",
        (now, incident_id, unit_id),
    )


def _judged_by(row: dict[str, Any], scope: str) -> None:
    """Ratings and flags are the summoning level's (or a level over it): a community under
    the street that blew the whistle does not rate the departments the street summoned."""
    if not row["summoned_level"].startswith(scope):
        raise Forbidden(
            f"unit {row['unit_id']} was summoned by {row['summoned_level']}: that level rates it"
        )


async def rate_unit(
    conn: AsyncConnection[DictRow], incident_id: int, action: ActionIn, *, scope: str
) -> dict[str, Any]:
    assert action.unit_id is not None
    row = await _record(conn, incident_id, action.unit_id)
    _judged_by(row, scope)
    if row["rating"] is not None:
        raise Conflict(f"unit {action.unit_id} was rated already", field="rating")
    await _set(
        conn, incident_id, action.unit_id, rating=action.rating, rating_comment=action.comment
    )
    return {"unit_id": action.unit_id, "rating": action.rating}


async def flag_unit(
    conn: AsyncConnection[DictRow], incident: Incident, action: ActionIn, *, scope: str
) -> dict[str, Any]:
    """日常哨's negative list: flags add up, each once."""
    assert action.unit_id is not None and action.flags is not None
    if incident.priority.value != "routine":
        raise Invalid(
            "the negative list is for 日常哨 (routine); rate 攻坚哨 and 应急哨", field="flags"
        )
    row = await _record(conn, incident.id, action.unit_id)
    _judged_by(row, scope)
    flags = sorted(set(row["flags"]) | set(action.flags))
    await _set(conn, incident.id, action.unit_id, flags=flags)
    return {"unit_id": action.unit_id, "flags": sorted(set(action.flags))}


async def rate_whistle(
    conn: AsyncConnection[DictRow], incident_id: int, action: ActionIn
) -> dict[str, Any]:
    assert action.unit_id is not None
    row = await _record(conn, incident_id, action.unit_id)
    if row["whistle_rating"] is not None:
        raise Conflict(f"unit {action.unit_id} rated this whistle already", field="rating")
    await _set(
        conn,
        incident_id,
        action.unit_id,
        whistle_rating=action.rating,
        whistle_comment=action.comment,
    )
    return {"unit_id": action.unit_id, "rating": action.rating}


async def flags_at_close(
    conn: AsyncConnection[DictRow], incident: Incident, now: datetime
) -> list[dict[str, Any]]:
    """A 日常哨 closing puts on the negative list each unit that never reported in (未报到) and
    each that reported in late (超时报到); what each got, for the audit."""
    if incident.priority.value != "routine":
        return []
    cur = await conn.execute(
        """
        UPDATE incident_summons SET flags = (
            SELECT array_agg(DISTINCT f ORDER BY f) FROM unnest(flags || ARRAY[
                CASE WHEN reported_at IS NULL THEN 'not_reported' ELSE 'late' END]) f)
        WHERE incident_id = %s AND (reported_at IS NULL OR reported_at > report_by)
        RETURNING unit_id, CASE WHEN reported_at IS NULL THEN 'not_reported' ELSE 'late' END AS f
        """,
        (incident.id,),
    )
    return [{"unit_id": r["unit_id"], "flags": [r["f"]]} for r in await cur.fetchall()]


async def summon_step(
    conn: AsyncConnection[DictRow],
    current: Incident,
    action: ActionIn,
    *,
    actor: str,
    level: str,
    report_by: datetime,
    scope: str,
    now: datetime,
) -> dict[str, Any]:
    """Apply a summon-family action to the records; what the audit and the event say."""
    match action.action:
        case Action.SUMMON:
            return await summon(
                conn,
                current,
                action,
                actor=actor,
                level=level,
                report_by=report_by,
                scope=scope,
                now=now,
            )
        case Action.REPORT_IN:
            if action.unit_id is None:
                raise Invalid("report_in needs unit_id", field="unit_id")
            return await report_in(conn, current.id, action.unit_id, now)
        case Action.RATE_UNIT:
            return await rate_unit(conn, current.id, action, scope=scope)
        case Action.FLAG_UNIT:
            return await flag_unit(conn, current, action, scope=scope)
        case Action.RATE_WHISTLE:
            if action.unit_id is None:
                raise Invalid("rate_whistle needs unit_id", field="unit_id")
            return await rate_whistle(conn, current.id, action)
    raise AssertionError(action.action)
