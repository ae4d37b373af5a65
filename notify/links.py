"""The link a dispatched unit gets: it acts on that one incident, from a phone, and nothing
else. The token is derived from the link's row with SB_SECRET, so no token is stored; it stops
working when the incident closes or goes to another unit."""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

from psycopg import AsyncConnection
from psycopg.rows import DictRow

PREFIX = "sbl_"
_TOKEN = re.compile(r"^sbl_(\d{1,18})_([0-9a-f]{32})$")


@dataclass(frozen=True, slots=True)
class UnitLink:
    id: int
    incident_id: int
    unit_id: str


def token_of(secret: bytes, link: UnitLink) -> str:
    return f"{PREFIX}{link.id}_{_mac(secret, link)}"


def _mac(secret: bytes, link: UnitLink) -> str:
    message = f"unit-link:{link.id}:{link.incident_id}:{link.unit_id}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()[:32]


async def link_for(conn: AsyncConnection[DictRow], incident_id: int, unit_id: str) -> UnitLink:
    """The unit's link to the incident (one per pair: a second dispatch reuses it)."""
    cur = await conn.execute(
        "INSERT INTO unit_links (incident_id, unit_id) VALUES (%s, %s)"
        " ON CONFLICT (incident_id, unit_id) DO UPDATE SET incident_id = excluded.incident_id"
        " RETURNING id",
        (incident_id, unit_id),
    )
    row = await cur.fetchone()
    assert row is not None
    return UnitLink(int(row["id"]), incident_id, unit_id)


async def resolve_link(
    conn: AsyncConnection[DictRow], secret: bytes, token: str
) -> UnitLink | None:
    """The link behind a token, or None when the token is not one this hub made."""
    found = _TOKEN.match(token)
    if found is None:
        return None
    cur = await conn.execute(
        "SELECT id, incident_id, unit_id FROM unit_links WHERE id = %s", (int(found[1]),)
    )
    row = await cur.fetchone()
    if row is None:
        return None
    link = UnitLink(int(row["id"]), int(row["incident_id"]), row["unit_id"])
    return link if hmac.compare_digest(_mac(secret, link), found[2]) else None
