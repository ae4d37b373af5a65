"""Residents' registers: per community, the ID numbers of the people registered there (户籍 and
流动人口登记), stored only as keyed hashes and masks, with their building and unit. A card read
in a community that keeps a register which does not hold it is `unregistered`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from psycopg import AsyncConnection
from psycopg.rows import DictRow
from pydantic import BaseModel, ConfigDict, Field

from hub.csv_files import csv_reader, records
from hub.db import fetch_model
from hub.errors import Conflict, Invalid, NotFound
from hub.paging import Page, decode_cursor, encode_cursor
from hub.text import PlainText
from idcard import numbers

MAX_ROWS = 50_000
Place = Annotated[PlainText, Field(min_length=1, max_length=64)]


class RegisterIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    area: str = Field(pattern=r"^\d{12}$", description="the community (12 digits)")
    name: Annotated[PlainText, Field(min_length=1, max_length=200)]


class Register(BaseModel):
    area: str
    name: str
    created_at: datetime
    residents: int = 0


class ResidentIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id_number: Annotated[str, Field(max_length=64)]
    building: Place | None = None
    unit: Place | None = None


class ResidentsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    residents: Annotated[list[ResidentIn], Field(min_length=1, max_length=10_000)]


class RowProblem(BaseModel):
    row: int = Field(description="0-based index in `residents`, or the CSV line number")
    message: str


class UploadReport(BaseModel):
    """What an upload did. Refused rows are named by position; their numbers never echoed."""

    added: int
    updated: int
    rejected: list[RowProblem]


class Resident(BaseModel):
    id_hash: str
    id_masked: str
    building: str | None
    unit: str | None
    updated_at: datetime


_COLUMNS = "r.area, r.name, r.created_at"


async def create_register(conn: AsyncConnection[DictRow], data: RegisterIn) -> Register:
    cur = await conn.execute(
        "INSERT INTO registers AS r (area, name) VALUES (%s, %s) ON CONFLICT DO NOTHING"
        f" RETURNING {_COLUMNS}",
        (data.area, data.name),
    )
    row = await cur.fetchone()
    if row is None:
        raise Conflict(f"community {data.area} has a register already", field="area")
    return Register.model_validate(row)


async def list_registers(conn: AsyncConnection[DictRow], *, scope: str) -> list[Register]:
    cur = await conn.execute(
        f"SELECT {_COLUMNS}, count(e.id_hash) AS residents FROM registers r"
        " LEFT JOIN register_entries e ON e.area = r.area WHERE r.area LIKE %s"
        " GROUP BY r.area ORDER BY r.area",
        (scope + "%",),
    )
    return [Register.model_validate(row) for row in await cur.fetchall()]


async def get_register(conn: AsyncConnection[DictRow], area: str, *, scope: str) -> Register:
    return await fetch_model(
        conn,
        Register,
        f"SELECT {_COLUMNS}, count(e.id_hash) AS residents FROM registers r"
        " LEFT JOIN register_entries e ON e.area = r.area"
        " WHERE r.area = %s AND r.area LIKE %s GROUP BY r.area",
        (area, scope + "%"),
        missing=f"no register for {area}",
    )


async def delete_register(conn: AsyncConnection[DictRow], area: str, *, scope: str) -> None:
    await get_register(conn, area, scope=scope)
    await conn.execute("DELETE FROM registers WHERE area = %s", (area,))


def parse_csv(text: str) -> tuple[list[tuple[int, ResidentIn]], list[RowProblem]]:
    """Rows of `id_number,building,unit` (a header line first), with their line numbers."""
    reader = csv_reader(text)
    if reader.fieldnames is None or "id_number" not in reader.fieldnames:
        raise Invalid(
            "the CSV needs a header line naming id_number (and building, unit)", field="file"
        )
    unknown = set(reader.fieldnames) - {"id_number", "building", "unit"}
    if unknown:
        raise Invalid(f"unknown CSV columns: {', '.join(sorted(unknown))}", field="file")
    rows: list[tuple[int, ResidentIn]] = []
    problems: list[RowProblem] = []
    for record in records(reader, field="file"):
        line = reader.line_num
        if len(rows) + len(problems) >= MAX_ROWS:
            raise Invalid(f"at most {MAX_ROWS} rows in one upload", field="file")
        if None in record:  # more cells than the header names
            problems.append(RowProblem(row=line, message="more cells than columns"))
            continue
        try:
            rows.append(
                (
                    line,
                    ResidentIn.model_validate(
                        {k: v for k, v in record.items() if v not in (None, "")}
                    ),
                )
            )
        except ValueError as exc:
            problems.append(RowProblem(row=line, message=_first_error(exc)))
    return rows, problems


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    return str(exc)


async def add_residents(
    conn: AsyncConnection[DictRow],
    area: str,
    rows: list[tuple[int, ResidentIn]],
    *,
    secret: bytes,
    scope: str,
    problems: list[RowProblem] | None = None,
) -> UploadReport:
    """Hash and store (or update the building and unit of) each resident; a malformed number
    or a wrong check digit is reported by row and not stored."""
    await get_register(conn, area, scope=scope)
    rejected = list(problems or [])
    hashed: dict[str, tuple[str, ResidentIn]] = {}
    for row, resident in rows:
        try:
            number = numbers.checked(resident.id_number)
        except numbers.NotAnIdNumber as exc:
            rejected.append(RowProblem(row=row, message=f"id_number: {exc}"))
            continue
        hashed[numbers.id_hash(secret, number)] = (numbers.mask_id(number), resident)
    added = 0
    if hashed:
        cur = await conn.execute(
            "INSERT INTO register_entries (area, id_hash, id_masked, building, unit)"
            " SELECT %s, * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[])"
            " ON CONFLICT (area, id_hash) DO UPDATE SET building = excluded.building,"
            " unit = excluded.unit, updated_at = now() RETURNING (xmax = 0) AS inserted",
            (
                area,
                list(hashed),
                [m for m, _ in hashed.values()],
                [r.building for _, r in hashed.values()],
                [r.unit for _, r in hashed.values()],
            ),
        )
        added = sum(1 for row in await cur.fetchall() if row["inserted"])
    rejected.sort(key=lambda p: p.row)
    return UploadReport(added=added, updated=len(hashed) - added, rejected=rejected)


async def list_residents(
    conn: AsyncConnection[DictRow], area: str, *, scope: str, limit: int, cursor: str | None
) -> Page[Resident]:
    await get_register(conn, area, scope=scope)
    after = decode_cursor(cursor)
    cur = await conn.execute(
        "SELECT id_hash, id_masked, building, unit, updated_at FROM register_entries"
        " WHERE area = %s AND id_hash > %s ORDER BY id_hash LIMIT %s",
        (area, after, limit + 1),
    )
    rows = [Resident.model_validate(row) for row in await cur.fetchall()]
    more = len(rows) > limit
    page = rows[:limit]
    return Page[Resident](items=page, next=encode_cursor(page[-1].id_hash) if more else None)


async def remove_resident(
    conn: AsyncConnection[DictRow], area: str, id_hash: str, *, scope: str
) -> None:
    await get_register(conn, area, scope=scope)
    cur = await conn.execute(
        "DELETE FROM register_entries WHERE area = %s AND id_hash = %s", (area, id_hash)
    )
    if cur.rowcount == 0:
        raise NotFound("no such resident in this register")


async def registered(
    conn: AsyncConnection[DictRow], pairs: list[tuple[str, str]]
) -> tuple[set[str], set[tuple[str, str]]]:
    """Of (community, id_hash) pairs: the communities that keep a register, and the pairs
    their registers hold."""
    areas = sorted({area for area, _ in pairs})
    cur = await conn.execute("SELECT area FROM registers WHERE area = ANY(%s)", (areas,))
    keeping = {row["area"] for row in await cur.fetchall()}
    if not keeping:
        return keeping, set()
    cur = await conn.execute(
        "SELECT area, id_hash FROM register_entries WHERE area = ANY(%s) AND id_hash = ANY(%s)",
        (sorted(keeping), sorted({h for a, h in pairs if a in keeping})),
    )
    return keeping, {(row["area"], row["id_hash"]) for row in await cur.fetchall()}
