"""Platform pushes become ordinary uplink messages and go through the MQTT path's pipeline."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import DictRow

from devices.registry import DeviceRef, device_refs, find_by_tag
from ingest.decode import Message, Reason, Rejection
from ingest.pipeline import Pipeline
from ingest.push.vendors import DECODERS, DEFAULT_DECODER, Decoded
from ingest.store import BatchResult, write_batch


@dataclass(frozen=True)
class Uplink:
    """One decoded platform report for one device."""

    channel: str
    body: dict[str, Any]


async def resolve_device(
    conn: AsyncConnection[DictRow], platform_id: str, *, tag: str, imei: str | None = None
) -> tuple[DeviceRef | None, str]:
    """A platform device: by our id, by the platform's id in a tag, or by IMEI.

    Returns the device (or None) and the decoder name from its `vendor_format` tag.
    """
    refs = await device_refs(conn, [platform_id])
    device = refs[0] if refs else await find_by_tag(conn, tag, platform_id)
    if device is None and imei:
        device = await find_by_tag(conn, "imei", imei)
    if device is None:
        return None, DEFAULT_DECODER
    cur = await conn.execute(
        "SELECT tags ->> 'vendor_format' AS f FROM devices WHERE id = %s", (device.id,)
    )
    row = await cur.fetchone()
    return device, (row["f"] if row and row["f"] else DEFAULT_DECODER)


def decode_fields(
    decoder_name: str, fields: Mapping[str, Any], seq: int, ts_ms: int
) -> list[Uplink]:
    """Vendor fields → telemetry and/or event uplinks.

    The two halves of one report get seq 2n and 2n+1, so both stay idempotent on the
    platform's packet number n.
    """
    decoder = DECODERS.get(decoder_name)
    if decoder is None:
        raise ValueError(f"unknown vendor_format {decoder_name!r}; known: {', '.join(DECODERS)}")
    decoded: Decoded = decoder.decode(fields)
    uplinks = []
    if decoded.telemetry:
        uplinks.append(Uplink("telemetry", {"seq": 2 * seq, "ts": ts_ms, **decoded.telemetry}))
    if decoded.event:
        uplinks.append(Uplink("event", {"seq": 2 * seq + 1, "ts": ts_ms, **decoded.event}))
    return uplinks


async def deliver(
    conn: AsyncConnection[DictRow],
    pipeline: Pipeline,
    device: DeviceRef,
    uplinks: list[Uplink],
    *,
    received_at: datetime | None = None,
) -> BatchResult:
    """Run the uplinks through the same decoding, storage and signals as MQTT messages."""
    now = received_at or datetime.now(UTC)
    messages = [
        Message(
            topic=f"sb/{device.area}/{device.id}/{u.channel}",
            payload=json.dumps(u.body, ensure_ascii=False).encode(),
            received_at=now,
        )
        for u in uplinks
    ]
    return await pipeline.process(conn, messages)


async def reject(
    conn: AsyncConnection[DictRow], platform: str, raw: bytes, reason: Reason, detail: str
) -> None:
    """Keep a push that could not be used as a dead letter, like a bad MQTT message."""
    message = Message(topic=f"push/{platform}", payload=raw, received_at=datetime.now(UTC))
    await write_batch(conn, [], [(message, Rejection(reason, detail))])
    # Committed now: the request is about to fail, and its failure must not take this along.
    await conn.commit()
