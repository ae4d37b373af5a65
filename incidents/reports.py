"""Incidents people report: a grid worker or a duty officer (`POST /api/v1/incidents`), or a
resident through a community's public intake. They enter the loop as rule-made incidents do:
the same states, deadlines, escalation, notifications and statistics (by `source`)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from psycopg import AsyncConnection
from psycopg.rows import DictRow
from pydantic import BaseModel, ConfigDict, Field, model_validator

from devices.models import AreaCode
from hub.contracts import Priority
from hub.text import PlainText
from incidents.dispatch import proposed_unit
from incidents.events import record_change
from incidents.models import Incident
from incidents.sla import Sla
from incidents.states import Status
from incidents.store import COLUMNS, record_audit

Category = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
Text = Annotated[PlainText, Field(min_length=1, max_length=200)]


class _Placed(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={"dependentRequired": {"lat": ["lon"], "lon": ["lat"]}},
    )

    category: Category
    title: Text
    site: Text | None = None
    building: Annotated[PlainText, Field(min_length=1, max_length=64)] | None = None
    floor: Annotated[PlainText, Field(min_length=1, max_length=16)] | None = None
    lat: Annotated[float, Field(ge=-90, le=90)] | None = None
    lon: Annotated[float, Field(ge=-180, le=180)] | None = None
    note: Annotated[PlainText, Field(max_length=2000)] | None = None

    @model_validator(mode="after")
    def _both_or_neither(self) -> _Placed:
        if (self.lat is None) != (self.lon is None):
            raise ValueError("lat and lon go together: give both or neither")
        return self


class ReportIn(_Placed):
    """`POST /api/v1/incidents`: what someone in the field saw."""

    priority: Priority = Priority.ROUTINE
    area: AreaCode


class PublicReportIn(_Placed):
    """A resident's report: the community comes from the intake key, the priority from the
    duty officer who accepts it."""


async def file_report(
    conn: AsyncConnection[DictRow],
    report: ReportIn,
    *,
    source: Literal["report", "public"],
    reported_by: str,
    now: datetime,
    sla: Sla,
) -> Incident:
    """Open the incident in `reported`, with an audit row carrying the reporter's note."""
    deadlines = sla[report.priority]
    suggested = await proposed_unit(
        conn, category=report.category, area=report.area, lat=report.lat, lon=report.lon
    )
    cur = await conn.execute(
        f"""
        INSERT INTO incidents (group_key, category, priority, status, area, site, building,
            floor, title, created_at, updated_at, accept_by, resolve_by, accept_deadline,
            resolve_deadline, signal_count, first_signal_at, last_signal_at, lat, lon,
            suggested_unit_id, source, reported_by)
        VALUES (%(key)s, %(category)s, %(priority)s, 'reported', %(area)s, %(site)s,
            %(building)s, %(floor)s, %(title)s, %(now)s, %(now)s, %(accept)s, %(resolve)s,
            %(accept)s, %(resolve)s, 0, %(now)s, %(now)s, %(lat)s, %(lon)s, %(suggested)s,
            %(source)s, %(by)s)
        RETURNING {COLUMNS}
        """,
        {
            **report.model_dump(exclude={"note"}),
            "priority": report.priority.value,
            "key": f"{source}:{uuid.uuid4().hex}",
            "now": now,
            "accept": now + deadlines.accept,
            "resolve": now + deadlines.resolve,
            "suggested": suggested,
            "source": source,
            "by": reported_by,
        },
    )
    incident = Incident.model_validate(await cur.fetchone())
    await record_audit(
        conn,
        incident.id,
        reported_by,
        "report",
        None,
        Status.REPORTED,
        now,
        note=report.note,
        data={"source": source},
    )
    await record_change(
        conn, "incident.created", incident, at=now, action="report", data={"source": source}
    )
    return incident
