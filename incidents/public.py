"""A community's public intake: the key behind the QR code on its notice board, and the
receipt a resident keeps to follow a report and rate it. Both are stored only as hashes."""

from __future__ import annotations

import base64
import hashlib
import secrets
from datetime import datetime

from psycopg import AsyncConnection
from psycopg.rows import DictRow
from pydantic import BaseModel, Field

from hub.errors import NotFound
from hub.text import PlainText
from incidents.models import Incident
from incidents.states import Status

KEY_PREFIX = "sbk_"


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class IntakeKeyIn(BaseModel):
    area: str = Field(pattern=r"^\d{12}$", description="the community whose notice board it is")
    name: PlainText = Field(min_length=1, max_length=100, description="where it is posted")


class IntakeKey(BaseModel):
    id: int
    area: str
    name: str
    created_at: datetime
    revoked_at: datetime | None


class IssuedIntakeKey(IntakeKey):
    key: str = Field(description="shown this once: put it in the QR code's URL")


class PublicStatus(BaseModel):
    """What a resident sees of their report: never a person's name or a note."""

    receipt: str
    title: str
    category: str
    status: Status
    created_at: datetime
    closed_at: datetime | None
    close_reason: str | None
    rating: int | None
    can_rate: bool


async def create_intake_key(conn: AsyncConnection[DictRow], data: IntakeKeyIn) -> IssuedIntakeKey:
    key = KEY_PREFIX + secrets.token_urlsafe(24)
    cur = await conn.execute(
        "INSERT INTO intake_keys (area, name, key_hash) VALUES (%s, %s, %s)"
        " RETURNING id, area, name, created_at, revoked_at",
        (data.area, data.name, _hash(key)),
    )
    return IssuedIntakeKey(**(await cur.fetchone() or {}), key=key)


async def list_intake_keys(conn: AsyncConnection[DictRow], *, scope: str) -> list[IntakeKey]:
    cur = await conn.execute(
        "SELECT id, area, name, created_at, revoked_at FROM intake_keys WHERE area LIKE %s"
        " ORDER BY id",
        (scope + "%",),
    )
    return [IntakeKey.model_validate(row) for row in await cur.fetchall()]


async def revoke_intake_key(conn: AsyncConnection[DictRow], key_id: int, *, scope: str) -> None:
    cur = await conn.execute(
        "UPDATE intake_keys SET revoked_at = coalesce(revoked_at, now())"
        " WHERE id = %s AND area LIKE %s",
        (key_id, scope + "%"),
    )
    if cur.rowcount == 0:
        raise NotFound(f"intake key {key_id} not found")


async def intake_area(conn: AsyncConnection[DictRow], key: str) -> tuple[int, str] | None:
    """(key id, community) of a live intake key, or None."""
    if not key.startswith(KEY_PREFIX):
        return None
    cur = await conn.execute(
        "SELECT id, area FROM intake_keys WHERE key_hash = %s AND revoked_at IS NULL", (_hash(key),)
    )
    row = await cur.fetchone()
    return (int(row["id"]), row["area"]) if row else None


async def issue_receipt(conn: AsyncConnection[DictRow], incident_id: int) -> str:
    """`SB-` and 20 letters and digits, easy to read out over the phone."""
    receipt = "SB-" + base64.b32encode(secrets.token_bytes(13)).decode()[:20]
    await conn.execute(
        "INSERT INTO public_receipts (receipt_hash, incident_id) VALUES (%s, %s)",
        (_hash(receipt), incident_id),
    )
    return receipt


async def receipt_incident(conn: AsyncConnection[DictRow], receipt: str) -> int:
    cur = await conn.execute(
        "SELECT incident_id FROM public_receipts WHERE receipt_hash = %s",
        (_hash(receipt.strip().upper()),),
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound("no report with this receipt")
    return int(row["incident_id"])


def public_status(receipt: str, incident: Incident) -> PublicStatus:
    return PublicStatus(
        receipt=receipt,
        title=incident.title,
        category=incident.category,
        status=incident.status,
        created_at=incident.created_at,
        closed_at=incident.closed_at,
        close_reason=incident.close_reason.value if incident.close_reason else None,
        rating=incident.rating,
        can_rate=incident.status is Status.CLOSED and incident.rating is None,
    )
