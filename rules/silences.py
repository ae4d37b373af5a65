"""Silences: signals matching an operator's matcher within a time range open no incidents."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from psycopg import AsyncConnection
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict, Field, model_validator

from hub.contracts import Signal
from hub.db import fetch_model
from hub.paging import Page, decode_int_cursor, page_of
from hub.text import PlainText
from hub.times import Moment
from rules.model import Kind
from rules.store import RULES_CHANNEL

MAX_SPAN = timedelta(days=30)


class Matcher(BaseModel):
    """Every given field must match; `kind` matches any of its kinds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Annotated[list[Kind], Field(max_length=32)] | None = None
    area_prefix: Annotated[str, Field(pattern=r"^\d{0,12}$")] = ""
    site: Annotated[PlainText, Field(max_length=200)] | None = None
    building: Annotated[PlainText, Field(max_length=200)] | None = None
    source_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")] | None = None

    def matches(self, signal: Signal) -> bool:
        return (
            signal.area.startswith(self.area_prefix)
            and (self.kind is None or signal.kind in self.kind)
            and (self.site is None or signal.site == self.site)
            and (self.building is None or signal.building == self.building)
            and (self.source_id is None or signal.source_id == self.source_id)
        )


class SilenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    matcher: Matcher
    starts_at: Moment
    ends_at: Moment
    reason: Annotated[PlainText, Field(min_length=1, max_length=500)]

    @model_validator(mode="after")
    def _range(self) -> SilenceIn:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        if self.ends_at - self.starts_at > MAX_SPAN:
            raise ValueError("a silence lasts at most 30 days")
        return self


class Silence(SilenceIn):
    id: int
    created_by: str
    created_at: datetime

    def covers(self, signal: Signal) -> bool:
        return self.starts_at <= signal.ts < self.ends_at and self.matcher.matches(signal)


_COLUMNS = "id, matcher, starts_at, ends_at, reason, created_by, created_at"


async def create_silence(conn: AsyncConnection[DictRow], data: SilenceIn, *, by: str) -> Silence:
    silence = await fetch_model(
        conn,
        Silence,
        "INSERT INTO silences (matcher, area_prefix, starts_at, ends_at, reason, created_by)"
        f" VALUES (%s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}",
        (
            Jsonb(data.matcher.model_dump(mode="json")),
            data.matcher.area_prefix,
            data.starts_at,
            data.ends_at,
            data.reason,
            by,
        ),
        missing="",
    )
    await conn.execute("SELECT pg_notify(%s, 'silences')", (RULES_CHANNEL,))
    return silence


async def list_silences(
    conn: AsyncConnection[DictRow],
    *,
    scope: str,
    active_at: datetime | None = None,
    in_force_at: datetime | None = None,
) -> list[Silence]:
    """Silences in the caller's area; with `active_at`, only those not yet over then; with
    `in_force_at`, only those in force then (started and not over)."""
    cur = await conn.execute(
        f"SELECT {_COLUMNS} FROM silences WHERE area_prefix LIKE %(scope)s"
        " AND (%(active)s::timestamptz IS NULL OR ends_at > %(active)s)"
        " AND (%(force)s::timestamptz IS NULL OR (starts_at <= %(force)s AND ends_at > %(force)s))"
        " ORDER BY starts_at, id",
        {"scope": scope + "%", "active": active_at, "force": in_force_at},
    )
    return [Silence.model_validate(row) for row in await cur.fetchall()]


async def page_silences(
    conn: AsyncConnection[DictRow],
    *,
    scope: str,
    in_force_at: datetime | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Page[Silence]:
    """Silences in the caller's area, newest first, a page at a time; with `in_force_at`,
    only those in force then."""
    cur = await conn.execute(
        f"SELECT {_COLUMNS} FROM silences WHERE area_prefix LIKE %(scope)s"
        " AND (%(force)s::timestamptz IS NULL OR (starts_at <= %(force)s AND ends_at > %(force)s))"
        " AND (%(before)s::bigint IS NULL OR id < %(before)s)"
        " ORDER BY id DESC LIMIT %(limit)s",
        {
            "scope": scope + "%",
            "force": in_force_at,
            "before": decode_int_cursor(cursor),
            "limit": limit + 1,
        },
    )
    return page_of(Silence, await cur.fetchall(), limit)


async def expire_silence(
    conn: AsyncConnection[DictRow], silence_id: int, *, scope: str, now: datetime
) -> Silence:
    """End a silence now (it stays listed, for the record)."""
    silence = await fetch_model(
        conn,
        Silence,
        f"UPDATE silences SET ends_at = greatest(starts_at + interval '1 microsecond',"
        f" least(ends_at, %s)) WHERE id = %s AND area_prefix LIKE %s RETURNING {_COLUMNS}",
        (now, silence_id, scope + "%"),
        missing=f"silence {silence_id} not found",
    )
    await conn.execute("SELECT pg_notify(%s, 'silences')", (RULES_CHANNEL,))
    return silence
