"""What an ID-card read means beyond the card itself: watch-list hits and impossible travel,
against stored reads and within the batch."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import DictRow

from hub.contracts import Signal
from idcard.reads import CardRead

# Faster than any road or rail trip between two reads means a cloned or shared card.
MAX_TRAVEL_KMH = 300.0


Hits = dict[str, list[dict[str, Any]]]  # id_hash → the watch lists holding it


async def enrich_reads(
    conn: AsyncConnection[DictRow], reads: list[CardRead], hits: Hits
) -> list[Signal]:
    """Watch-list hits (`watchlist_hits`) and impossible travel, against stored reads and
    within the batch."""
    last_seen = await _last_seen(conn, list({read.id_hash for read in reads}))
    signals: list[Signal] = []
    for read in sorted(reads, key=lambda r: r.ts):
        for hit in covering(hits, read.id_hash, read.device.area):
            signals.append(
                read.signal(
                    "id_watchlist_hit",
                    watchlist=hit["name"],
                    label=hit["label"],
                    level=hit["level"],
                )
            )
        if read.lat is None or read.lon is None:
            continue
        previous = last_seen.get(read.id_hash)
        speed = _speed_kmh(previous, read) if previous else None
        if previous and speed is not None and speed > MAX_TRAVEL_KMH:
            signals.append(
                read.signal(
                    "id_impossible_travel",
                    speed,
                    speed_kmh=round(speed),
                    previous_device=previous["device_id"],
                    previous_ts=previous["ts"].isoformat(),
                )
            )
        last_seen[read.id_hash] = {
            "ts": read.ts,
            "lat": read.lat,
            "lon": read.lon,
            "device_id": read.device.id,
        }
    return signals


async def watchlist_hits(conn: AsyncConnection[DictRow], reads: list[CardRead]) -> Hits:
    """The watch lists holding each read card, whatever their area (see `covering`)."""
    hashes = list({read.id_hash for read in reads})
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


def _speed_kmh(previous: dict[str, Any], read: CardRead) -> float | None:
    assert read.lat is not None and read.lon is not None
    km = haversine_km(previous["lat"], previous["lon"], read.lat, read.lon)
    hours = abs((read.ts - previous["ts"]) / timedelta(hours=1))
    if km < 1.0:  # GPS noise and neighbouring doors are not travel
        return None
    return math.inf if hours == 0 else km / hours


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance between two WGS-84 points."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0088 * math.asin(math.sqrt(a))
