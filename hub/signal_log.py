"""The signal log: every signal stored once, with an id that gives the order consumers read in.

Producers (ingest, device health, carrier pushes) append signals inside the transaction of the
message that caused them; the rules engine reads committed signals after its cursor.

Ids come from a sequence, and two transactions that take ids concurrently can commit in the
other order: a reader that had passed id 12 would then never see a late-committing 11. So
appending is serialised: `append` takes a transaction-scoped advisory lock right before it
takes ids, and the lock is released only once the transaction's commit is visible
(PostgreSQL ends a transaction's visibility before it releases its locks). A transaction that
takes ids after another therefore commits after it, and ids become visible in order. The
lock is held only from the signals' COPY to the commit, so callers append last, just before
they commit. Gaps (a rolled-back append) are harmless: readers ask for ids greater than the
last one they handled.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from psycopg import AsyncConnection
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from hub.contracts import Signal

SIGNALS_CHANNEL = "sb_signals"  # NOTIFY on every append, so consumers wake at once
_APPEND_LOCK = 0x5B_0002  # pg_advisory_xact_lock key: one appender at a time
_COLUMNS = (
    "ts",
    "kind",
    "source_id",
    "source_type",
    "area",
    "site",
    "building",
    "floor",
    "value",
    "confidence",
    "attrs",
    "tags",
)
_TYPES = (
    "timestamptz",
    "text",
    "text",
    "text",
    "text",
    "text",
    "text",
    "text",
    "float8",
    "float8",
    "jsonb",
    "jsonb",
)
_READ = f"SELECT id, received_at, {', '.join(_COLUMNS)} FROM signals"


async def append(
    conn: AsyncConnection[DictRow],
    signals: Sequence[Signal],
    *,
    received_at: datetime | None = None,
) -> None:
    """Store `signals` in the caller's transaction; call it last, right before the commit.

    `received_at` overrides the hub's clock (the transaction's start) for replayed history
    and tests.
    """
    if not signals:
        return
    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_APPEND_LOCK,))
    columns = [*_COLUMNS, "received_at"] if received_at else list(_COLUMNS)
    types = [*_TYPES, "timestamptz"] if received_at else list(_TYPES)
    async with (
        conn.cursor() as cur,
        cur.copy(f"COPY signals ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy,
    ):
        copy.set_types(types)
        for s in signals:
            row = [
                s.ts,
                s.kind,
                s.source_id,
                s.source_type,
                s.area,
                s.site,
                s.building,
                s.floor,
                s.value,
                s.confidence,
                Jsonb(s.attrs),
                Jsonb(s.tags),
            ]
            if received_at:
                row.append(received_at)
            await copy.write_row(row)
    await conn.execute("SELECT pg_notify(%s, '')", (SIGNALS_CHANNEL,))


async def read_after(
    conn: AsyncConnection[DictRow], after_id: int, *, area_prefix: str = "", limit: int = 500
) -> tuple[list[Signal], int]:
    """Committed signals with an id above `after_id` in the area, in log order, at most
    `limit`; and the id a reader has now handled everything up to (past other areas'
    signals too, so that a quiet area's reader does not scan them again)."""
    cur = await conn.execute("SELECT max(id) AS top FROM signals WHERE id > %s", (after_id,))
    row = await cur.fetchone()
    top = row["top"] if row and row["top"] is not None else after_id
    cur = await conn.execute(
        f"{_READ} WHERE id > %s AND id <= %s AND area LIKE %s ORDER BY id LIMIT %s",
        (after_id, top, area_prefix + "%", limit),
    )
    signals = [Signal(**row) for row in await cur.fetchall()]
    if len(signals) == limit:
        top = signals[-1].id or top  # more to read after these
    return signals, top


async def read_received(
    conn: AsyncConnection[DictRow],
    start: datetime,
    end: datetime,
    *,
    area_prefix: str = "",
    through_id: int | None = None,
) -> list[Signal]:
    """Signals the hub received in [start, end) in the area, in log order; with
    `through_id`, only those up to that id (what a consumer has already handled)."""
    cur = await conn.execute(
        f"{_READ} WHERE received_at >= %s AND received_at < %s AND area LIKE %s"
        " AND (%s::bigint IS NULL OR id <= %s) ORDER BY id",
        (start, end, area_prefix + "%", through_id, through_id),
    )
    return [Signal(**row) for row in await cur.fetchall()]


async def last_id(conn: AsyncConnection[DictRow]) -> int:
    """The highest id handed out so far (0 for an empty log)."""
    cur = await conn.execute("SELECT coalesce(max(id), 0) AS id FROM signals")
    row = await cur.fetchone()
    return int(row["id"]) if row else 0


async def last_id_before(conn: AsyncConnection[DictRow], received_before: datetime) -> int:
    """The highest id of a signal received before this instant (0 if none)."""
    cur = await conn.execute(
        "SELECT coalesce(max(id), 0) AS id FROM signals WHERE received_at < %s", (received_before,)
    )
    row = await cur.fetchone()
    return int(row["id"]) if row else 0


async def read_ids(conn: AsyncConnection[DictRow], ids: list[int]) -> list[Signal]:
    """These signals, in log order."""
    cur = await conn.execute(f"{_READ} WHERE id = ANY(%s) ORDER BY id", (ids,))
    return [Signal(**row) for row in await cur.fetchall()]


async def source_ids(
    conn: AsyncConnection[DictRow], ids: list[int], *, source_type: str
) -> list[str]:
    """The distinct sources of `source_type` among these signals, sorted."""
    cur = await conn.execute(
        "SELECT DISTINCT source_id FROM signals WHERE id = ANY(%s) AND source_type = %s"
        " ORDER BY source_id",
        (ids, source_type),
    )
    return [row["source_id"] for row in await cur.fetchall()]


async def search(
    conn: AsyncConnection[DictRow],
    *,
    scope: str,
    kind: str | None = None,
    source_id: str | None = None,
    source_type: str | None = None,
    area: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before_id: int | None = None,
    hidden_source_type: str | None = None,
    limit: int = 100,
) -> list[Signal]:
    """Newest first within the caller's area; `before_id` continues a page. Returns up to
    `limit + 1` (the extra one says there is more)."""
    cur = await conn.execute(
        f"""
        {_READ}
        WHERE area LIKE %(scope)s AND area LIKE %(area)s
          AND (%(kind)s::text IS NULL OR kind = %(kind)s)
          AND (%(source_id)s::text IS NULL OR source_id = %(source_id)s)
          AND (%(source_type)s::text IS NULL OR source_type = %(source_type)s)
          AND (%(since)s::timestamptz IS NULL OR ts >= %(since)s)
          AND (%(until)s::timestamptz IS NULL OR ts < %(until)s)
          AND (%(before)s::bigint IS NULL OR id < %(before)s)
          AND (%(hidden)s::text IS NULL OR source_type <> %(hidden)s)
        ORDER BY id DESC LIMIT %(limit)s
        """,
        {
            "scope": scope + "%",
            "area": (area or "") + "%",
            "kind": kind,
            "source_id": source_id,
            "source_type": source_type,
            "since": since,
            "until": until,
            "before": before_id,
            "hidden": hidden_source_type,
            "limit": limit + 1,
        },
    )
    return [Signal(**row) for row in await cur.fetchall()]


async def hourly_kinds(
    conn: AsyncConnection[DictRow],
    *,
    scope: str,
    area: str | None,
    since: datetime,
    until: datetime,
    zone: str,
    excluded: Sequence[str] = (),
) -> list[DictRow]:
    """How many signals of each kind happened (`ts`) in each hour of [since, until) by the
    clock of `zone`: rows of (kind, day, hour, n), within the caller's area, leaving out the
    `excluded` kinds."""
    cur = await conn.execute(
        """
        SELECT kind, (ts AT TIME ZONE %(zone)s)::date AS day,
               extract(hour FROM ts AT TIME ZONE %(zone)s)::int AS hour, count(*) AS n
        FROM signals
        WHERE area LIKE %(scope)s AND area LIKE %(area)s AND ts >= %(since)s AND ts < %(until)s
          AND kind <> ALL(%(excluded)s)
        GROUP BY 1, 2, 3
        """,
        {
            "zone": zone,
            "scope": scope + "%",
            "area": (area or "") + "%",
            "since": since,
            "until": until,
            "excluded": list(excluded),
        },
    )
    return await cur.fetchall()
