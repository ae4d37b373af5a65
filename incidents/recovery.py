"""An open rule incident whose trouble is over (its device is back online): closed as
resolved, or marked recovered for people to judge, as the rule's `recover` says."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from psycopg import AsyncConnection
from psycopg.rows import DictRow

from hub.contracts import Signal
from incidents.events import record_change
from incidents.models import Incident
from incidents.states import Status
from incidents.store import COLUMNS, record_audit

RecoveryAction = Literal["close", "note"]


async def recover(
    conn: AsyncConnection[DictRow],
    rule_id: str,
    group_key: str,
    signal: Signal,
    action: RecoveryAction,
    *,
    now: datetime,
) -> Incident | None:
    """Apply the recovery to the open incident of (rule, group); None when none is open."""
    cur = await conn.execute(
        f"SELECT {COLUMNS} FROM incidents WHERE rule_id = %s AND group_key = %s"
        " AND status <> 'closed' FOR UPDATE",
        (rule_id, group_key),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    current = Incident.model_validate(row)
    closing = action == "close"
    cur = await conn.execute(
        f"UPDATE incidents SET recovered_at = %(now)s, updated_at = %(now)s,"
        f" status = CASE WHEN %(closing)s THEN 'closed' ELSE status END,"
        f" closed_at = CASE WHEN %(closing)s THEN %(now)s ELSE closed_at END,"
        f" close_reason = CASE WHEN %(closing)s THEN 'resolved' ELSE close_reason END"
        f" WHERE id = %(id)s RETURNING {COLUMNS}",
        {"now": now, "closing": closing, "id": current.id},
    )
    updated = Incident.model_validate(await cur.fetchone())
    note = f"{signal.kind} from {signal.source_id}: " + (
        "closed as resolved" if closing else "the trouble is over; left open for people to close"
    )
    await record_audit(
        conn,
        current.id,
        "shaobing",
        "recover",
        current.status,
        Status.CLOSED if closing else current.status,
        now,
        note=note,
        data={
            "signal_id": signal.id,
            "kind": signal.kind,
            "close_reason": "resolved" if closing else None,
        },
    )
    await record_change(
        conn,
        "incident.updated",
        updated,
        at=now,
        action="recover",
        data={"signal_id": signal.id, "closed": closing},
    )
    return updated
