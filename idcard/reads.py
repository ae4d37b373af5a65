"""ID-card reads: a card as a reader sends it, the read as it is kept (the number only as a
keyed hash and a mask, the name masked), stored, and looked up by hash or masked number;
never by the number itself."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated

from psycopg import AsyncConnection
from psycopg.rows import DictRow
from pydantic import BaseModel, ConfigDict, Field

from devices.registry import DeviceRef
from hub.contracts import Signal
from idcard import numbers


class Card(BaseModel):
    """The card's fields as the reader sends them (`card` of an `id_read` event)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id_number: Annotated[str, Field(min_length=1, max_length=64)]
    name: Annotated[str, Field(max_length=64)] | None = None
    sex: Annotated[str, Field(max_length=8)] | None = None
    nation: Annotated[str, Field(max_length=32)] | None = None
    birth: str | None = None
    address: str | None = None
    authority: str | None = None
    valid_from: str | None = None
    valid_to: str | None = None


class BadCardDate(ValueError):
    """The card's validity date is not YYYYMMDD (or 长期)."""


@dataclass(slots=True)
class CardRead:
    """One read, by the reader `device`, as it is kept: hashed and masked only."""

    device: DeviceRef
    seq: int
    ts: datetime
    id_hash: str
    id_masked: str
    name_masked: str | None
    sex: str | None
    nation: str | None
    valid_to: date | None
    status: str  # ok | invalid | expired: what the card itself says
    operator: str | None
    lat: float | None
    lon: float | None
    verdict: str | None = None  # what the reader is told (idcard.verdicts)
    verdict_level: str | None = None
    verdict_message: str | None = None

    def signal(self, kind: str, value: float | None = None, **attrs: object) -> Signal:
        """A signal about this read: never the number or the name, only hash and mask."""
        base = {"id_hash": self.id_hash, "id_masked": self.id_masked, "operator": self.operator}
        return self.device.signal(self.ts, kind, value, {**base, **attrs})


def read_card(
    card: Card,
    *,
    device: DeviceRef,
    seq: int,
    ts: datetime,
    operator: str | None,
    lat: float | None,
    lon: float | None,
    secret: bytes,
) -> tuple[CardRead, list[Signal]]:
    """The read as it is kept, with the signals the card alone raises (`id_invalid`,
    `id_expired`). Raises NotAnIdNumber when the number has no ID number's shape, and
    BadCardDate when its validity date cannot be read."""
    number = numbers.normalise(card.id_number)
    try:
        valid_to = numbers.parse_card_date(card.valid_to)
    except ValueError as exc:
        raise BadCardDate(str(exc)) from exc
    problems = numbers.problems(number, today=ts.date())
    expired = valid_to is not None and valid_to < ts.date()
    read = CardRead(
        device=device,
        seq=seq,
        ts=ts,
        id_hash=numbers.id_hash(secret, number),
        id_masked=numbers.mask_id(number),
        name_masked=numbers.mask_name(card.name) if card.name else None,
        sex=card.sex,
        nation=card.nation,
        valid_to=valid_to,
        status="invalid" if problems else "expired" if expired else "ok",
        operator=operator,
        lat=lat,
        lon=lon,
    )
    if problems:
        return read, [read.signal("id_invalid", problems=[p.value for p in problems])]
    if valid_to is not None and expired:
        return read, [read.signal("id_expired", valid_to=valid_to.isoformat())]
    return read, []


async def copy_reads(conn: AsyncConnection[DictRow], reads: list[CardRead]) -> None:
    async with (
        conn.cursor() as cur,
        cur.copy(
            "COPY id_reads (ts, device_id, area, operator, lat, lon, id_hash, id_masked,"
            " name_masked, sex, nation, valid_to, status, seq, verdict, verdict_level,"
            " verdict_message) FROM STDIN"
        ) as copy,
    ):
        for r in reads:
            await copy.write_row(
                (
                    r.ts,
                    r.device.id,
                    r.device.area,
                    r.operator,
                    r.lat,
                    r.lon,
                    r.id_hash,
                    r.id_masked,
                    r.name_masked,
                    r.sex,
                    r.nation,
                    r.valid_to,
                    r.status,
                    r.seq,
                    r.verdict,
                    r.verdict_level,
                    r.verdict_message,
                )
            )


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
