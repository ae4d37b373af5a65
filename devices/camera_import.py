"""CSV bulk registration of cameras, with the conventions of the device import: a header
row, a dry run, errors by line number, and nothing stored from a bad row."""

from __future__ import annotations

from psycopg import AsyncConnection
from psycopg.rows import DictRow

from devices.cameras import create_camera
from devices.csv_import import ImportReport, checked_rows, import_report, read_table
from devices.models import CameraIn, Credentials

REQUIRED = ("id", "area", "stream_url")
# `zones` and `settings` are JSON in their cell, shaped as in `POST /api/v1/cameras`.
OPTIONAL = (
    "detect_url",
    "fps",
    "site",
    "building",
    "floor",
    "lat",
    "lon",
    "tags",
    "zones",
    "settings",
)


async def import_cameras(
    conn: AsyncConnection[DictRow], text: str, *, scope: str, dry_run: bool, all_or_nothing: bool
) -> ImportReport:
    """Validate every row, then register the valid ones in the caller's transaction (with
    `all_or_nothing`, none when a row is bad). Credentials are shown in the report, once."""
    rows = read_table(text, REQUIRED, OPTIONAL)
    valid, errors = await checked_rows(conn, rows, CameraIn, scope=scope)
    credentials: list[Credentials] = []
    if not dry_run and not (all_or_nothing and errors):
        for _, camera in valid:
            credentials.append((await create_camera(conn, camera)).credentials)
    return import_report(
        rows, valid, errors, credentials, dry_run=dry_run, all_or_nothing=all_or_nothing
    )
