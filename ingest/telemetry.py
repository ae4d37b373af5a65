"""Per-device telemetry in time buckets: `time_bucket` on TimescaleDB, `date_bin` elsewhere.

Both start buckets at TimescaleDB's default origin (Monday 2000-01-03 00:00 UTC), so the two
paths return the same rows for the same data.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from psycopg import AsyncConnection
from psycopg.rows import DictRow
from pydantic import BaseModel

from hub.durations import parse_duration
from hub.errors import Invalid
from hub.timescale import timescale_enabled

MAX_BUCKETS = 10_000


class TelemetryBucket(BaseModel):
    bucket: datetime
    metric: str
    avg: float
    min: float
    max: float
    count: int


def parse_bucket(text: str) -> timedelta:
    """`30s`, `5m`, `1h`, `1d` → a timedelta between 1 second and 31 days."""
    try:
        return parse_duration(text, low=timedelta(seconds=1), high=timedelta(days=31))
    except ValueError as exc:
        raise Invalid(
            f"bucket is a number and a unit (30s, 5m, 1h, 1d) from 1s to 31d: {exc}", field="bucket"
        ) from None


async def bucketed(
    conn: AsyncConnection[DictRow],
    device_id: str,
    start: datetime,
    end: datetime,
    bucket: timedelta,
    *,
    metric: str | None = None,
) -> list[TelemetryBucket]:
    if end <= start:
        raise Invalid("to must be after from", field="to")
    if (end - start) / bucket > MAX_BUCKETS:
        raise Invalid(
            f"at most {MAX_BUCKETS} buckets per request; widen the bucket", field="bucket"
        )
    binning = (
        "time_bucket(%(bucket)s, ts)"
        if await timescale_enabled(conn)
        else "date_bin(%(bucket)s, ts, TIMESTAMPTZ '2000-01-03 00:00:00+00')"
    )
    cur = await conn.execute(
        f"""
        SELECT {binning} AS bucket, metric, avg(value) AS avg, min(value) AS min,
               max(value) AS max, count(*) AS count
        FROM readings
        WHERE device_id = %(device)s AND ts >= %(start)s AND ts < %(end)s
          AND (%(metric)s::text IS NULL OR metric = %(metric)s)
        GROUP BY 1, 2 ORDER BY 1, 2
        """,
        {"bucket": bucket, "device": device_id, "start": start, "end": end, "metric": metric},
    )
    return [TelemetryBucket.model_validate(row) for row in await cur.fetchall()]
