"""Platform pushes become ordinary uplink messages and go through the MQTT path's pipeline."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import DictRow

from devices.registry import DeviceRef, device_refs, find_by_tag
from ingest import metrics
from ingest.carriers.vendors import DECODERS, DEFAULT_DECODER, Decoded
from ingest.decode import Message, Reason, Rejection
from ingest.pipeline import Pipeline
from ingest.store import BatchResult, write_batch


@dataclass(frozen=True)
class Uplink:
    """One decoded platform report for one device."""

    channel: str
    body: dict[str, Any]


async def resolve_device(
    conn: AsyncConnection[DictRow],
    platform_ids: Sequence[str],
    *,
    tag: str,
    scope: str,
    imei: str | None = None,
) -> tuple[DeviceRef | None, str]:
    """A platform device within `scope` (the pushing token's area): by the platform's id in
    its tag, by our own id, or by IMEI. A device outside the scope reads as unknown.

    Returns the device (or None) and the decoder name from its `vendor_format` tag.
    """
    device = None
    for platform_id in platform_ids:
        device = await find_by_tag(conn, tag, platform_id, scope=scope)
        if device is None:
            refs = await device_refs(conn, [platform_id], scope=scope)
            device = refs[0] if refs else None
        if device is not None:
            break
    if device is None and imei:
        device = await find_by_tag(conn, "imei", imei, scope=scope)
    if device is None:
        return None, DEFAULT_DECODER
    vendor_format = device.tags.get("vendor_format")  # the registry's, read just now
    return device, (str(vendor_format) if vendor_format else DEFAULT_DECODER)


# Uplinks one platform report can become: its telemetry and up to seven events.
PARTS_PER_REPORT = 8


def decode_fields(
    decoder_name: str, fields: Mapping[str, Any], seq: int, ts_ms: int, *, typed: bool
) -> list[Uplink]:
    """Vendor fields → telemetry and event uplinks. `typed`: the platform gives the values
    JSON types of its object model (ingest.carriers.vendors).

    The parts of report n get seq 8n (telemetry) and 8n+1... (events), so each stays
    idempotent on the platform's packet number n (or, without one, its timestamp).
    """
    decoder = DECODERS.get(decoder_name)
    if decoder is None:
        raise ValueError(f"unknown vendor_format {decoder_name!r}; known: {', '.join(DECODERS)}")
    decoded: Decoded = decoder.decode(fields, typed=typed)
    base = PARTS_PER_REPORT * seq
    uplinks = []
    if decoded.telemetry:
        uplinks.append(Uplink("telemetry", {"seq": base, "ts": ts_ms, **decoded.telemetry}))
    for k, event in enumerate(decoded.events[: PARTS_PER_REPORT - 1], start=1):
        uplinks.append(Uplink("event", {"seq": base + k, "ts": ts_ms, **event}))
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
    conn: AsyncConnection[DictRow],
    platform: str,
    raw: bytes,
    reason: Reason,
    detail: str,
    *,
    area: str,
    device: DeviceRef | None = None,
) -> None:
    """Keep a push that could not be used as a dead letter, like a bad MQTT message, and
    count it in `sb_ingest_dead_letters_total`. `area`: the device's, else the pushing
    token's (whose integrator is to see it)."""
    message = Message(topic=f"push/{platform}", payload=raw, received_at=datetime.now(UTC))
    # No device type: a platform's envelope is never kept, whatever the device.
    rejection = Rejection(reason, detail, device_id=device.id if device else None, area=area)
    await write_batch(conn, [], [(message, rejection)])
    # Committed now: the request is about to fail, and its failure must not take this along.
    await conn.commit()
    metrics.DEAD_LETTERS.labels(reason.value).inc()
