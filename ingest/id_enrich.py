"""What an ID-card read means beyond the card itself: watch-list hits and impossible travel,
against stored reads and within the batch; and the reads stored (hashed and masked only)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import DictRow

from hub.contracts import Signal
from ingest.decode import Accepted, IdRead, signal_of

# Faster than any road or rail trip between two reads means a cloned or shared card.
MAX_TRAVEL_KMH = 300.0


Hits = dict[str, list[dict[str, Any]]]  # id_hash → the watch lists holding it


async def enrich_id_reads(
    conn: AsyncConnection[DictRow], reads: list[Accepted], hits: Hits
) -> list[Signal]:
    """Watch-list hits (`watchlist_hits`) and impossible travel, against stored reads and
    within the batch."""
    hashes = list({acc.id_read.id_hash for acc in reads if acc.id_read})
    last_seen = await _last_seen(conn, hashes)
    signals: list[Signal] = []
    for acc in sorted(reads, key=lambda a: a.ts):
        read = acc.id_read
        assert read is not None
        base = {"id_hash": read.id_hash, "id_masked": read.id_masked, "operator": read.operator}
        for hit in covering(hits, read.id_hash, acc.device.area):
            attrs = {**base, "watchlist": hit["name"], "label": hit["label"], "level": hit["level"]}
            signals.append(signal_of(acc, "id_watchlist_hit", None, attrs))
        if read.lat is None or read.lon is None:
            continue
        previous = last_seen.get(read.id_hash)
        speed = _speed_kmh(previous, read, acc.ts) if previous else None
        if previous and speed is not None and speed > MAX_TRAVEL_KMH:
            attrs = {
                **base,
                "speed_kmh": round(speed),
                "previous_device": previous["device_id"],
                "previous_ts": previous["ts"].isoformat(),
            }
            signals.append(signal_of(acc, "id_impossible_travel", speed, attrs))
        last_seen[read.id_hash] = {
            "ts": acc.ts,
            "lat": read.lat,
            "lon": read.lon,
            "device_id": acc.device.id,
        }
    return signals


async def watchlist_hits(conn: AsyncConnection[DictRow], reads: list[Accepted]) -> Hits:
    """The watch lists holding each read card, whatever their area (see `covering`)."""
    hashes = list({acc.id_read.id_hash for acc in reads if acc.id_read})
    cur = await conn.execute(
        "SELECT e.id_hash, w.name, w.label, w.level, w.area_prefix, w.reader_message"
        " FROM watchlist_entries e JOIN watchlists w ON w.id = e.watchlist_id"
        " WHERE e.id_hash = ANY(%s)",
        (hashes,),
    )
    hits: Hits = {}
    for row in await cur.fetchall():
        hits.setdefault(row["id_hash"], []).append(row)
    return hits


def covering(hits: Hits, id_hash: str, area: str) -> list[dict[str, Any]]:
    """The lists holding the card whose area covers the reader's: one district's list says
    nothing about a read in another."""
    return [hit for hit in hits.get(id_hash, []) if area.startswith(hit["area_prefix"])]


async def _last_seen(
    conn: AsyncConnection[DictRow], hashes: list[str]
) -> dict[str, dict[str, Any]]:
    """Where each card was last read (with a position)."""
    cur = await conn.execute(
        "SELECT DISTINCT ON (id_hash) id_hash, ts, lat, lon, device_id FROM id_reads"
        " WHERE id_hash = ANY(%s) AND lat IS NOT NULL ORDER BY id_hash, ts DESC",
        (hashes,),
    )
    return {row["id_hash"]: row for row in await cur.fetchall()}


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


async def copy_id_reads(conn: AsyncConnection[DictRow], reads: list[Accepted]) -> None:
    async with (
        conn.cursor() as cur,
        cur.copy(
            "COPY id_reads (ts, device_id, area, operator, lat, lon, id_hash, id_masked,"
            " name_masked, sex, nation, valid_to, status, seq, verdict, verdict_level,"
            " verdict_message) FROM STDIN"
        ) as copy,
    ):
        for acc in reads:
            r = acc.id_read
            assert r is not None
            await copy.write_row(
                (
                    acc.ts,
                    acc.device.id,
                    acc.device.area,
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
                    acc.seq,
                    r.verdict,
                    r.verdict_level,
                    r.verdict_message,
                )
            )
