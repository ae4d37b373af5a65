"""The history of ID-card reads, by hash or masked number; never by the number itself."""

from __future__ import annotations

from datetime import date, datetime

from psycopg import AsyncConnection
from psycopg.rows import DictRow
from pydantic import BaseModel


class IdReadOut(BaseModel):
    ts: datetime
    device_id: str
    area: str
    operator: str | None
    lat: float | None
    lon: float | None
    id_hash: str
    id_masked: str
    name_masked: str | None
    sex: str | None
    nation: str | None
    valid_to: date | None
    status: str


async def find_reads(
    conn: AsyncConnection[DictRow],
    *,
    scope: str,
    id_hash: str | None = None,
    id_masked: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
) -> list[IdReadOut]:
    """Newest first, inside the caller's area."""
    cur = await conn.execute(
        """
        SELECT ts, device_id, area, operator, lat, lon, id_hash, id_masked, name_masked, sex,
               nation, valid_to, status
        FROM id_reads
        WHERE area LIKE %s
          AND (%s::text IS NULL OR id_hash = %s)
          AND (%s::text IS NULL OR id_masked = %s)
          AND (%s::timestamptz IS NULL OR ts >= %s)
          AND (%s::timestamptz IS NULL OR ts < %s)
        ORDER BY ts DESC LIMIT %s
        """,
        (scope + "%", id_hash, id_hash, id_masked, id_masked, since, since, until, until, limit),
    )
    return [IdReadOut.model_validate(row) for row in await cur.fetchall()]
