"""Write one batch of decoded messages in one transaction, with COPY.

Idempotency: every (device_id, seq) goes through `uplinks` first; only the keys that table did
not have yet produce readings and signals, so a redelivered message changes nothing.
"""

from __future__ import annotations

import math
import operator
import re
import weakref
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import AsyncConnection, sql
from psycopg.pq import TransactionStatus
from psycopg.rows import DictRow, tuple_row
from psycopg.types.json import Jsonb

from hub.events import announce
from hub.signals import SIGNAL_COLUMNS, Signal
from ingest.decode import Accepted, IdRead, Message, Reason, Rejection, signal_of

BATTERY_LOW_PCT = 20.0
_DEVICE_ID = operator.attrgetter("device.id")
# Faster than any road or rail trip between two reads means a cloned or shared card.
MAX_TRAVEL_KMH = 300.0
_HEAD_BYTES = 256
_NO_STATE = (None, False, None, None)  # device_state columns read back, for a new device
# A payload that mentions a card or holds an 18-character ID-shaped run keeps no bytes.
_PERSONAL = re.compile(rb"(?i)card|id_number|\d{17}[\dx]")


@dataclass
class BatchResult:
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    signals: list[Signal] = field(default_factory=list)
    readings: int = 0


Turn = Callable[[], Awaitable[None]]


async def no_wait() -> None:
    return None


async def write_batch(
    conn: AsyncConnection[DictRow],
    accepted: list[Accepted],
    rejected: list[tuple[Message, Rejection]],
    turn: Turn = no_wait,
) -> BatchResult:
    """Store a batch inside the caller's transaction; the caller commits, then acknowledges.

    The order-free part (deduplication, readings) comes first; `turn` is awaited before the
    part that depends on earlier batches being committed (device state, ID-read history), so
    a caller writing several batches at once can let them overlap up to that point.
    """
    fresh, duplicates = await _deduplicate(conn, accepted)
    rejected = rejected + duplicates
    result = BatchResult(accepted=len(fresh))
    result.rejected.update(r.reason.value for _, r in rejected)
    # Near index order (device_id, ts): neighbouring index entries then land on the same leaf
    # pages. A device's messages arrive in time order, so a stable sort of the messages by
    # device does it, at a fifth of the cost of sorting the rows.
    readings = [row for acc in sorted(fresh, key=_DEVICE_ID) for row in acc.readings]
    await _copy_readings(conn, readings)

    await turn()
    signals = [sig for acc in fresh for sig in acc.signals]
    signals += await _state_transitions(conn, fresh)
    id_reads = [acc for acc in fresh if acc.id_read is not None]
    if id_reads:
        signals += await _enrich_id_reads(conn, id_reads)
        await _copy_id_reads(conn, id_reads)
    await copy_signals(conn, signals)
    await _copy_dead_letters(conn, rejected)
    result.readings = len(readings)
    result.signals = signals
    return result


async def _deduplicate(
    conn: AsyncConnection[DictRow], accepted: list[Accepted]
) -> tuple[list[Accepted], list[tuple[Message, Rejection]]]:
    """Claim each (device_id, seq) in `uplinks`; returns the messages not seen before, still in
    arrival order (device state depends on it), and the duplicates as rejections."""
    keyed: dict[tuple[str, int], Accepted] = {}
    for acc in accepted:
        if acc.seq is not None:
            keyed.setdefault((acc.device.id, acc.seq), acc)
    new = await _claim_uplinks(conn, keyed) if keyed else None
    fresh: list[Accepted] = []
    duplicates: list[tuple[Message, Rejection]] = []
    for acc in accepted:
        if acc.seq is None:
            fresh.append(acc)  # status messages carry no seq
            continue
        key = (acc.device.id, acc.seq)
        if keyed[key] is acc and (new is None or key in new):
            fresh.append(acc)
        else:  # seen before, or earlier in this batch
            duplicates.append((acc.message, _duplicate(key)))
    return fresh, duplicates


_STAGED: weakref.WeakSet[AsyncConnection[DictRow]] = weakref.WeakSet()


async def prepare_connection(conn: AsyncConnection[DictRow]) -> None:
    """The per-connection temp tables batches are staged in, created on first use.

    Remembered only when created outside a transaction: one created inside could be rolled
    back with it, so that connection checks again next time.
    """
    if conn in _STAGED:
        return
    idle = conn.info.transaction_status == TransactionStatus.IDLE
    await conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS _batch_uplinks"
        " (device_id text, seq bigint, ts timestamptz, channel text) ON COMMIT DELETE ROWS"
    )
    await conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS _batch_state (device_id text, last_seen timestamptz,"
        " online boolean, offline_since timestamptz, reported_offline boolean,"
        " battery_pct float8, rssi_dbm float8, fw text) ON COMMIT DELETE ROWS"
    )
    if idle:
        await conn.commit()
        _STAGED.add(conn)


async def _claim_uplinks(
    conn: AsyncConnection[DictRow], keyed: dict[tuple[str, int], Accepted]
) -> set[tuple[str, int]] | None:
    """Store the batch's keys in `uplinks`; None when all were new, else the new ones.

    The common case, all new, is one COPY straight into the table. A key seen before fails
    it with a unique violation; the batch then goes through a staging table and an insert
    that skips the keys already there, which costs about twice as much.
    """
    try:
        async with conn.transaction():  # a savepoint: the failed COPY leaves nothing behind
            await _copy_keys(conn, "uplinks", keyed)
        return None
    except psycopg.errors.UniqueViolation:
        pass
    await prepare_connection(conn)
    await _copy_keys(conn, "_batch_uplinks", keyed)
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute(
            "INSERT INTO uplinks (device_id, seq, ts, channel)"
            " SELECT device_id, seq, ts, channel FROM _batch_uplinks ON CONFLICT DO NOTHING"
            " RETURNING device_id, seq"
        )
        new = {(device_id, seq) for device_id, seq in await cur.fetchall()}
        # Emptied now too, not only at commit: a caller may run several batches in one
        # transaction (the push receivers do). DELETE, as TRUNCATE swaps files every time.
        await cur.execute("DELETE FROM _batch_uplinks")
    return new


async def _copy_keys(
    conn: AsyncConnection[DictRow], table: str, keyed: dict[tuple[str, int], Accepted]
) -> None:
    async with (
        conn.cursor() as cur,
        cur.copy(
            sql.SQL("COPY {} (device_id, seq, ts, channel) FROM STDIN (FORMAT BINARY)").format(
                sql.Identifier(table)
            )
        ) as copy,
    ):
        copy.set_types(["text", "int8", "timestamptz", "text"])
        for (device_id, seq), acc in keyed.items():
            await copy.write_row((device_id, seq, acc.ts, acc.channel))


def _duplicate(key: tuple[str, int]) -> Rejection:
    return Rejection(Reason.DUPLICATE, f"seq {key[1]} of {key[0]} was already stored")


@dataclass(slots=True)
class _Latest:
    """A device's state after the batch's messages, applied in arrival order."""

    last: Accepted
    online: bool = True
    battery_pct: float | None = None
    rssi_dbm: float | None = None
    fw: str | None = None


async def _state_transitions(conn: AsyncConnection[DictRow], fresh: list[Accepted]) -> list[Signal]:
    """Update device_state from the batch; say device_online after a reported outage and
    battery_low when the battery crosses the threshold."""
    latest: dict[str, _Latest] = {}
    for acc in fresh:  # in arrival order: the last message of a device sets its state
        state = latest.get(acc.device.id)
        if state is None:
            state = latest[acc.device.id] = _Latest(acc)
        state.last = acc
        if acc.online is not None:
            state.online = acc.online
        if acc.battery_pct is not None:
            state.battery_pct = acc.battery_pct
        if acc.rssi_dbm is not None:
            state.rssi_dbm = acc.rssi_dbm
        if acc.fw is not None:
            state.fw = acc.fw
    if not latest:
        return []
    # Plain tuples: a batch reads a row per device, and dict rows cost a tenth of the batch.
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute(
            "SELECT device_id, reported_offline, offline_since, battery_pct"
            " FROM device_state WHERE device_id = ANY(%s) ORDER BY device_id FOR UPDATE",
            (list(latest),),
        )
        before = {row[0]: row for row in await cur.fetchall()}
    signals: list[Signal] = []
    rows = []
    for device_id, state in sorted(latest.items()):  # one lock order for every writer
        last, online, battery = state.last, state.online, state.battery_pct
        last_seen = last.message.received_at
        _, reported, offline_since, old_battery = before.get(device_id, _NO_STATE)
        reported = bool(reported)
        if online:
            offline_since = None
        elif offline_since is None:
            offline_since = last_seen
        if online and reported:
            signals.append(signal_of(last, "device_online", None, {}))
            await announce(conn, "device.online", id=device_id, area=last.device.area)
            reported = False
        if (
            battery is not None
            and battery < BATTERY_LOW_PCT
            and (old_battery is None or old_battery >= BATTERY_LOW_PCT)
        ):
            signals.append(signal_of(last, "battery_low", battery, {"battery_pct": battery}))
        rows.append(
            (device_id, last_seen, online, offline_since, reported, battery, state.rssi_dbm,
             state.fw)
        )  # fmt: skip
    await _upsert_state(conn, rows)
    return signals


async def _upsert_state(conn: AsyncConnection[DictRow], rows: list[tuple[Any, ...]]) -> None:
    """One statement for the whole batch, fed by COPY: a row per device is the hot path."""
    await prepare_connection(conn)
    async with conn.cursor() as cur:
        async with cur.copy("COPY _batch_state FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(
                ["text", "timestamptz", "bool", "timestamptz", "bool", "float8", "float8", "text"]
            )
            for row in rows:
                await copy.write_row(row)
        await cur.execute(
            """
            INSERT INTO device_state AS s (device_id, last_seen, online, offline_since,
                                           reported_offline, battery_pct, rssi_dbm, fw)
            SELECT * FROM _batch_state
            ON CONFLICT (device_id) DO UPDATE SET
                last_seen = greatest(s.last_seen, excluded.last_seen),
                online = excluded.online,
                offline_since = excluded.offline_since,
                reported_offline = excluded.reported_offline,
                battery_pct = coalesce(excluded.battery_pct, s.battery_pct),
                rssi_dbm = coalesce(excluded.rssi_dbm, s.rssi_dbm),
                fw = coalesce(excluded.fw, s.fw),
                updated_at = now()
            """
        )
        await cur.execute("DELETE FROM _batch_state")


async def _enrich_id_reads(conn: AsyncConnection[DictRow], reads: list[Accepted]) -> list[Signal]:
    """Watch-list hits and impossible travel, against stored reads and within the batch."""
    hashes = list({acc.id_read.id_hash for acc in reads if acc.id_read})
    cur = await conn.execute(
        "SELECT e.id_hash, w.name, w.label, w.level FROM watchlist_entries e"
        " JOIN watchlists w ON w.id = e.watchlist_id WHERE e.id_hash = ANY(%s)",
        (hashes,),
    )
    hits: dict[str, list[dict[str, Any]]] = {}
    for row in await cur.fetchall():
        hits.setdefault(row["id_hash"], []).append(row)
    cur = await conn.execute(
        "SELECT DISTINCT ON (id_hash) id_hash, ts, lat, lon, device_id FROM id_reads"
        " WHERE id_hash = ANY(%s) AND lat IS NOT NULL ORDER BY id_hash, ts DESC",
        (hashes,),
    )
    last_seen: dict[str, dict[str, Any]] = {row["id_hash"]: row for row in await cur.fetchall()}

    signals: list[Signal] = []
    for acc in sorted(reads, key=lambda a: a.ts):
        read = acc.id_read
        assert read is not None
        base = {"id_hash": read.id_hash, "id_masked": read.id_masked, "operator": read.operator}
        for hit in hits.get(read.id_hash, []):
            signals.append(
                signal_of(
                    acc,
                    "id_watchlist_hit",
                    None,
                    {
                        **base,
                        "watchlist": hit["name"],
                        "label": hit["label"],
                        "level": hit["level"],
                    },
                )
            )
        previous = last_seen.get(read.id_hash)
        if previous and read.lat is not None and read.lon is not None:
            speed = _speed_kmh(previous, read, acc.ts)
            if speed is not None and speed > MAX_TRAVEL_KMH:
                signals.append(
                    signal_of(
                        acc,
                        "id_impossible_travel",
                        speed,
                        {
                            **base,
                            "speed_kmh": round(speed),
                            "previous_device": previous["device_id"],
                            "previous_ts": previous["ts"].isoformat(),
                        },
                    )
                )
        if read.lat is not None and read.lon is not None:
            last_seen[read.id_hash] = {
                "ts": acc.ts, "lat": read.lat, "lon": read.lon, "device_id": acc.device.id,
            }  # fmt: skip
    return signals


def _speed_kmh(previous: dict[str, Any], read: IdRead, ts: datetime) -> float | None:
    assert read.lat is not None and read.lon is not None
    km = haversine_km(previous["lat"], previous["lon"], read.lat, read.lon)
    hours = abs((ts - previous["ts"]) / timedelta(hours=1))
    if km < 1.0:  # GPS noise and neighbouring doors are not travel
        return None
    return math.inf if hours == 0 else km / hours


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance between two WGS-84 points."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0088 * math.asin(math.sqrt(a))


async def _copy_readings(
    conn: AsyncConnection[DictRow], rows: list[tuple[datetime, str, str, float]]
) -> None:
    if not rows:
        return
    async with (
        conn.cursor() as cur,
        cur.copy("COPY readings (ts, device_id, metric, value) FROM STDIN (FORMAT BINARY)") as copy,
    ):
        copy.set_types(["timestamptz", "text", "text", "float8"])
        for row in rows:
            await copy.write_row(row)


async def copy_signals(conn: AsyncConnection[DictRow], signals: list[Signal]) -> None:
    """Store signals (also used by the health monitor and the push receivers)."""
    if not signals:
        return
    async with (
        conn.cursor() as cur,
        cur.copy(f"COPY signals ({', '.join(SIGNAL_COLUMNS)}) FROM STDIN (FORMAT BINARY)") as copy,
    ):
        copy.set_types(
            ["timestamptz", "text", "text", "text", "text", "text", "text", "float8",
             "float8", "jsonb"]
        )  # fmt: skip
        for s in signals:
            await copy.write_row(
                (s.ts, s.kind, s.source_id, s.source_type, s.area, s.site, s.building,
                 s.value, s.confidence, Jsonb(s.attrs))
            )  # fmt: skip


async def _copy_id_reads(conn: AsyncConnection[DictRow], reads: list[Accepted]) -> None:
    async with (
        conn.cursor() as cur,
        cur.copy(
            "COPY id_reads (ts, device_id, area, operator, lat, lon, id_hash, id_masked,"
            " name_masked, sex, nation, valid_to, status) FROM STDIN"
        ) as copy,
    ):
        for acc in reads:
            r = acc.id_read
            assert r is not None
            await copy.write_row(
                (acc.ts, acc.device.id, acc.device.area, r.operator, r.lat, r.lon,
                 r.id_hash, r.id_masked, r.name_masked, r.sex, r.nation, r.valid_to,
                 r.status)
            )  # fmt: skip


async def _copy_dead_letters(
    conn: AsyncConnection[DictRow], rejected: list[tuple[Message, Rejection]]
) -> None:
    if not rejected:
        return
    async with (
        conn.cursor() as cur,
        cur.copy(
            "COPY dead_letters (received_at, topic, size, head, reason, detail) FROM STDIN"
        ) as copy,
    ):
        for message, rejection in rejected:
            await copy.write_row(
                (message.received_at, message.topic[:512], len(message.payload),
                 _head(message), rejection.reason.value, rejection.detail[:1000])
            )  # fmt: skip


def _head(message: Message) -> str | None:
    """The first bytes of a rejected payload, unless it may hold an ID number (DESIGN §5)."""
    if _PERSONAL.search(message.payload):
        return None
    return message.payload[:_HEAD_BYTES].decode("utf-8", errors="replace").replace("\x00", "\ufffd")
