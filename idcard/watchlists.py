"""Watch lists: uploaded as ID numbers, stored only as keyed hashes and masks."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from psycopg import AsyncConnection, errors
from psycopg.rows import DictRow
from pydantic import BaseModel, ConfigDict, Field

from hub.db import fetch_model
from hub.errors import Conflict, NotFound
from hub.text import PlainText
from idcard import numbers

Level = Literal["info", "watch", "alert"]


class WatchlistIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
    label: Annotated[PlainText, Field(min_length=1, max_length=200)]
    level: Level = "watch"
    area_prefix: Annotated[str, Field(pattern=r"^\d{0,12}$")] = ""
    reader_message: Annotated[PlainText, Field(min_length=1, max_length=200)] | None = Field(
        default=None,
        description="what a hit tells the grid worker's reader (never the label); default by"
        " level, e.g. alert: 请勿当面处置，保持安全距离，立即联系社区民警",
    )


class Watchlist(BaseModel):
    id: int
    name: str
    label: str
    level: Level
    area_prefix: str
    reader_message: str | None
    created_at: datetime
    entries: int = 0


class EntriesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id_numbers: Annotated[list[str], Field(min_length=1, max_length=10_000)]
    note: Annotated[PlainText, Field(max_length=200)] | None = None


class EntryProblem(BaseModel):
    index: int
    message: str


class EntriesReport(BaseModel):
    """The outcome of an upload. Bad numbers are named by position, never echoed."""

    added: int
    already_listed: int
    rejected: list[EntryProblem]


class Entry(BaseModel):
    id_hash: str
    id_masked: str
    note: str | None


_COLUMNS = "w.id, w.name, w.label, w.level, w.area_prefix, w.reader_message, w.created_at"


async def create_watchlist(conn: AsyncConnection[DictRow], data: WatchlistIn) -> Watchlist:
    try:
        return await fetch_model(
            conn,
            Watchlist,
            "INSERT INTO watchlists AS w (name, label, level, area_prefix, reader_message)"
            f" VALUES (%s, %s, %s, %s, %s) RETURNING {_COLUMNS}",
            (data.name, data.label, data.level, data.area_prefix, data.reader_message),
            missing="",
        )
    except errors.UniqueViolation:
        raise Conflict(f"watch list {data.name} already exists", field="name") from None


async def list_watchlists(conn: AsyncConnection[DictRow], *, scope: str) -> list[Watchlist]:
    cur = await conn.execute(
        f"SELECT {_COLUMNS}, count(e.id_hash) AS entries FROM watchlists w"
        " LEFT JOIN watchlist_entries e ON e.watchlist_id = w.id"
        " WHERE w.area_prefix LIKE %s GROUP BY w.id ORDER BY w.id",
        (scope + "%",),
    )
    return [Watchlist.model_validate(row) for row in await cur.fetchall()]


async def get_watchlist(conn: AsyncConnection[DictRow], list_id: int, *, scope: str) -> Watchlist:
    return await fetch_model(
        conn,
        Watchlist,
        f"SELECT {_COLUMNS}, count(e.id_hash) AS entries FROM watchlists w"
        " LEFT JOIN watchlist_entries e ON e.watchlist_id = w.id"
        " WHERE w.id = %s AND w.area_prefix LIKE %s GROUP BY w.id",
        (list_id, scope + "%"),
        missing=f"watch list {list_id} not found",
    )


async def add_entries(
    conn: AsyncConnection[DictRow], list_id: int, data: EntriesIn, *, secret: bytes, scope: str
) -> EntriesReport:
    """Hash and store the numbers; malformed ones are reported by index."""
    await get_watchlist(conn, list_id, scope=scope)
    rows: dict[str, str] = {}
    rejected: list[EntryProblem] = []
    for index, raw in enumerate(data.id_numbers):
        try:
            number = numbers.checked(raw)
        except numbers.NotAnIdNumber as exc:
            rejected.append(EntryProblem(index=index, message=str(exc)))
            continue
        rows[numbers.id_hash(secret, number)] = numbers.mask_id(number)
    added = 0
    if rows:
        async with conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO watchlist_entries (watchlist_id, id_hash, id_masked, note)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING id_hash",
                [(list_id, h, m, data.note) for h, m in rows.items()],
                returning=True,
            )
            while True:
                added += len(await cur.fetchall())
                if not cur.nextset():
                    break
    return EntriesReport(added=added, already_listed=len(rows) - added, rejected=rejected)


async def list_entries(conn: AsyncConnection[DictRow], list_id: int, *, scope: str) -> list[Entry]:
    await get_watchlist(conn, list_id, scope=scope)
    cur = await conn.execute(
        "SELECT id_hash, id_masked, note FROM watchlist_entries WHERE watchlist_id = %s"
        " ORDER BY id_masked",
        (list_id,),
    )
    return [Entry.model_validate(row) for row in await cur.fetchall()]


async def remove_entry(
    conn: AsyncConnection[DictRow], list_id: int, id_hash: str, *, scope: str
) -> None:
    await get_watchlist(conn, list_id, scope=scope)
    cur = await conn.execute(
        "DELETE FROM watchlist_entries WHERE watchlist_id = %s AND id_hash = %s", (list_id, id_hash)
    )
    if cur.rowcount == 0:
        raise NotFound("no such entry on this watch list")


async def delete_watchlist(conn: AsyncConnection[DictRow], list_id: int, *, scope: str) -> None:
    await get_watchlist(conn, list_id, scope=scope)
    await conn.execute("DELETE FROM watchlists WHERE id = %s", (list_id,))
