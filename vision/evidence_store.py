"""Evidence rows: which picture belongs to which camera and area (no OpenCV needed here)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from psycopg import AsyncConnection
from psycopg.rows import DictRow

from hub.errors import NotFound

if TYPE_CHECKING:
    from vision.events import Event
    from vision.evidence import Picture


async def record(
    conn: AsyncConnection[DictRow],
    picture: Picture,
    path: Path,
    *,
    camera_id: str,
    area: str,
    event: Event,
) -> None:
    await conn.execute(
        "INSERT INTO evidence (id, camera_id, area, event_type, zone, width, height, bytes, path)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
        (
            picture.id,
            camera_id,
            area,
            event.type,
            event.zone,
            picture.width,
            picture.height,
            len(picture.jpeg),
            str(path),
        ),
    )


@dataclass(frozen=True, slots=True)
class EvidenceFile:
    id: str
    camera_id: str
    area: str
    event_type: str
    path: Path


async def find(conn: AsyncConnection[DictRow], evidence_id: str, *, scope: str) -> EvidenceFile:
    """The evidence row inside the caller's area scope; NotFound otherwise."""
    cur = await conn.execute(
        "SELECT id, camera_id, area, event_type, path FROM evidence WHERE id = %s AND area LIKE %s",
        (evidence_id, scope + "%"),
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"evidence {evidence_id} not found")
    return EvidenceFile(
        row["id"], row["camera_id"], row["area"], row["event_type"], Path(row["path"])
    )


async def list_for_camera(
    conn: AsyncConnection[DictRow], camera_id: str, *, limit: int = 50
) -> list[dict[str, Any]]:
    cur = await conn.execute(
        "SELECT id, event_type, zone, width, height, bytes, created_at FROM evidence"
        " WHERE camera_id = %s ORDER BY created_at DESC LIMIT %s",
        (camera_id, limit),
    )
    return [dict(row) for row in await cur.fetchall()]
