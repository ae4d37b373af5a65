"""Photos on an incident: a JPEG or PNG as its bytes say (not its name), within a size and a
pixel count, re-encoded so that no EXIF (GPS, camera serial, time) or text chunk survives, and
kept on disk under SB_DATA_DIR with a row saying whose it is."""

from __future__ import annotations

import hashlib
import io
import uuid
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError
from psycopg import AsyncConnection
from psycopg.rows import DictRow
from pydantic import BaseModel, Field, computed_field

from hub.errors import NotFound, TooLarge, UnsupportedMediaType
from incidents.models import Incident

MAX_PIXELS = 40_000_000  # a 40 MP photo; more is a decompression bomb, not a picture
_SIGNATURES = {b"\xff\xd8\xff": "image/jpeg", b"\x89PNG\r\n\x1a\n": "image/png"}


class Attachment(BaseModel):
    id: str
    incident_id: int
    content_type: str
    size: int
    width: int
    height: int
    uploaded_by: str
    created_at: datetime

    @computed_field  # type: ignore[prop-decorator]
    @property
    def url(self) -> str:
        """Where whoever may see the incident gets the picture."""
        return f"/api/v1/incidents/{self.incident_id}/attachments/{self.id}"


class IncidentWithPhotos(Incident):
    """An incident as the API answers it: with the photos people added (a resident's report,
    field staff on site), each served at its `url` to whoever may see the incident."""

    attachments: list[Attachment] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Cleaned:
    content_type: str
    data: bytes
    width: int
    height: int


def clean_image(data: bytes, *, max_bytes: int) -> Cleaned:
    """The picture, checked and re-encoded without metadata; 413 or 415 otherwise."""
    if len(data) > max_bytes:
        raise TooLarge(f"the file has {len(data)} bytes; at most {max_bytes}", field="file")
    content_type = next((t for sig, t in _SIGNATURES.items() if data.startswith(sig)), None)
    if content_type is None:
        raise UnsupportedMediaType("not a JPEG or PNG picture (judged by its bytes)", field="file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.width * image.height > MAX_PIXELS:
                raise TooLarge(
                    f"{image.width}×{image.height} pixels; at most {MAX_PIXELS}", field="file"
                )
            image.load()
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        Image.DecompressionBombWarning,
        Image.DecompressionBombError,
    ) as exc:
        raise UnsupportedMediaType(f"the picture cannot be read: {exc}", field="file") from None
    upright = ImageOps.exif_transpose(image)  # keep what the orientation tag said, then drop it
    out = io.BytesIO()
    if content_type == "image/jpeg":
        upright.convert("RGB").save(out, "JPEG", quality=90)
    else:
        upright.save(out, "PNG")
    return Cleaned(content_type, out.getvalue(), upright.width, upright.height)


async def store_attachment(
    conn: AsyncConnection[DictRow], data_dir: Path, incident_id: int, picture: Cleaned, *, by: str
) -> Attachment:
    attachment_id = uuid.uuid4().hex
    suffix = ".jpg" if picture.content_type == "image/jpeg" else ".png"
    folder = data_dir / "attachments" / str(incident_id)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{attachment_id}{suffix}"
    path.write_bytes(picture.data)
    cur = await conn.execute(
        "INSERT INTO incident_attachments (id, incident_id, content_type, size, sha256, width,"
        " height, path, uploaded_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " RETURNING id, incident_id, content_type, size, width, height, uploaded_by, created_at",
        (
            attachment_id,
            incident_id,
            picture.content_type,
            len(picture.data),
            hashlib.sha256(picture.data).hexdigest(),
            picture.width,
            picture.height,
            str(path),
            by,
        ),
    )
    return Attachment.model_validate(await cur.fetchone())


async def list_attachments(conn: AsyncConnection[DictRow], incident_id: int) -> list[Attachment]:
    cur = await conn.execute(
        "SELECT id, incident_id, content_type, size, width, height, uploaded_by, created_at"
        " FROM incident_attachments WHERE incident_id = %s ORDER BY created_at, id",
        (incident_id,),
    )
    return [Attachment.model_validate(row) for row in await cur.fetchall()]


@dataclass(frozen=True, slots=True)
class StoredFile:
    incident_id: int
    content_type: str
    path: Path


async def attachments_of(
    conn: AsyncConnection[DictRow], incident_ids: list[int]
) -> dict[int, list[Attachment]]:
    """The photos of each of these incidents, oldest first (every id has a list)."""
    cur = await conn.execute(
        "SELECT id, incident_id, content_type, size, width, height, uploaded_by, created_at"
        " FROM incident_attachments WHERE incident_id = ANY(%s) ORDER BY created_at, id",
        (incident_ids,),
    )
    found: dict[int, list[Attachment]] = {i: [] for i in incident_ids}
    for row in await cur.fetchall():
        found[row["incident_id"]].append(Attachment.model_validate(row))
    return found


async def attachment_file(
    conn: AsyncConnection[DictRow],
    attachment_id: str,
    *,
    scope: str,
    incident_id: int | None = None,
) -> StoredFile:
    """Where an attachment whose incident lies in `scope` (and, given `incident_id`, is that
    one) is kept, and whose incident it is."""
    cur = await conn.execute(
        "SELECT a.incident_id, a.content_type, a.path FROM incident_attachments a"
        " JOIN incidents i ON i.id = a.incident_id WHERE a.id = %s AND i.area LIKE %s"
        " AND (%s::bigint IS NULL OR a.incident_id = %s)",
        (attachment_id, scope + "%", incident_id, incident_id),
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"attachment {attachment_id} not found")
    return StoredFile(int(row["incident_id"]), row["content_type"], Path(row["path"]))
