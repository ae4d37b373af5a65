"""The answer to every ID-card read, for the grid worker at the door: published QoS 1 on the
reader's own `cmd` topic once the read is committed. It carries the masked number and name and
what to do, never the number, the full name or a watch list's internal label.

One verdict per read, the gravest that applies: `watchlist` (a list covering the reader's
area holds the card), `invalid` (check digit or birth date wrong), `expired`, `unregistered`
(the community keeps a register that does not hold the card), else `ok`. A read the broker
delivers again is answered again, with the verdict stored beside it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from typing import Any, Literal

from psycopg import AsyncConnection
from psycopg.rows import DictRow

from hub.contracts import Signal
from idcard.enrich import Hits, covering
from idcard.reads import CardRead
from idcard.registers import registered

Verdict = Literal["ok", "invalid", "expired", "watchlist", "unregistered"]
_GRAVITY = {"alert": 3, "watch": 2, "info": 1}
MESSAGES: dict[str, str] = {
    "ok": "核验通过",
    "invalid": "证件号码校验不通过，请核对证件",
    "expired": "证件已过期，请提醒办理换领",
    "unregistered": "未在本社区登记，请引导办理居住登记",
}
# What a watch-list hit tells the worker when the list says nothing itself, by its level.
LEVEL_MESSAGES = {
    "alert": "请勿当面处置，保持安全距离，立即联系社区民警",
    "watch": "请留意并上报社区工作站",
    "info": "请按社区工作要求登记",
}


@dataclass(frozen=True, slots=True)
class ReaderVerdict:
    area: str
    device_id: str
    read_seq: int
    ts: str  # the read's own time, RFC 3339: the reader drops a verdict 10 min past it
    verdict: str
    masked_id: str
    masked_name: str | None
    level: str | None
    message: str

    def payload(self) -> dict[str, Any]:
        return {
            "type": "id_verdict",
            "read_seq": self.read_seq,
            "verdict": self.verdict,
            "masked_id": self.masked_id,
            "masked_name": self.masked_name,
            "level": self.level,
            "message": self.message,
            "ts": self.ts,
        }


async def judge(conn: AsyncConnection[DictRow], reads: list[CardRead], hits: Hits) -> list[Signal]:
    """Set each read's verdict (stored with it, sent after the commit); returns the
    `id_unregistered` signals of the communities whose registers lack the card."""
    keeping, held = await registered(conn, [(read.device.area, read.id_hash) for read in reads])
    signals: list[Signal] = []
    for read in reads:
        place = (read.device.area, read.id_hash)
        unregistered = read.status != "invalid" and place[0] in keeping and place not in held
        if unregistered:
            signals.append(read.signal("id_unregistered"))
        lists = covering(hits, read.id_hash, read.device.area)
        gravest = max(lists, key=lambda hit: _GRAVITY[hit["level"]], default=None)
        if gravest is not None:
            read.verdict, read.verdict_level = "watchlist", gravest["level"]
            read.verdict_message = gravest["reader_message"] or LEVEL_MESSAGES[gravest["level"]]
        else:
            read.verdict = (
                read.status if read.status != "ok" else ("unregistered" if unregistered else "ok")
            )
            read.verdict_message = MESSAGES[read.verdict]
    return signals


def verdicts_of(reads: list[CardRead]) -> list[ReaderVerdict]:
    return [
        ReaderVerdict(
            read.device.area,
            read.device.id,
            read.seq,
            read.ts.isoformat(),
            read.verdict,
            read.id_masked,
            read.name_masked,
            read.verdict_level,
            read.verdict_message or "",
        )
        for read in reads
        if read.verdict is not None
    ]


async def stored_verdicts(
    conn: AsyncConnection[DictRow], repeats: list[CardRead]
) -> list[ReaderVerdict]:
    """The verdicts given to reads delivered again (the first answer may not have arrived)."""
    keys = [(read.device.id, read.seq, read.ts) for read in repeats]
    if not keys:
        return []
    cur = await conn.execute(
        "SELECT r.device_id, r.area, r.seq, r.ts, r.verdict, r.id_masked, r.name_masked,"
        " r.verdict_level, r.verdict_message FROM id_reads r"
        " JOIN unnest(%s::text[], %s::bigint[], %s::timestamptz[]) AS k (device_id, seq, ts)"
        " ON r.device_id = k.device_id AND r.seq = k.seq AND r.ts = k.ts"
        " WHERE r.verdict IS NOT NULL",
        ([k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys]),
    )
    return [
        ReaderVerdict(
            row["area"],
            row["device_id"],
            row["seq"],
            row["ts"].astimezone(UTC).isoformat(),
            row["verdict"],
            row["id_masked"],
            row["name_masked"],
            row["verdict_level"],
            row["verdict_message"] or "",
        )
        for row in await cur.fetchall()
    ]
