"""CSV bulk registration of devices, with a dry run and a per-row error report."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import DictRow
from pydantic import BaseModel, ValidationError

from devices.areas import existing_areas
from devices.models import Credentials, DeviceIn
from devices.registry import (
    PLATFORM_TAGS,
    create_devices_bulk,
    existing_ids,
    taken_platform_ids,
)
from hub.errors import Invalid

REQUIRED = ("id", "type", "area")
OPTIONAL = ("site", "building", "floor", "lat", "lon", "tags")
MAX_ROWS = 10_000


class RowError(BaseModel):
    row: int
    id: str | None
    field: str | None
    message: str


class ImportReport(BaseModel):
    """What an import did (or, in a dry run, would do)."""

    dry_run: bool
    all_or_nothing: bool
    rows: int
    valid: int
    created: int
    errors: list[RowError]
    credentials: list[Credentials]


async def import_devices(
    conn: AsyncConnection[DictRow],
    text: str,
    *,
    scope: str,
    dry_run: bool,
    all_or_nothing: bool,
    seal_key: bytes | None = None,
) -> ImportReport:
    """Validate every row, then insert the valid ones in the caller's transaction.

    With `all_or_nothing`, one bad row means nothing is written.
    """
    records = _read_rows(text)
    known_areas = await existing_areas(conn, {r.get("area") or "" for _, r in records})
    errors: list[RowError] = []
    valid: list[tuple[int, DeviceIn]] = []
    seen: dict[str, int] = {}
    for line, record in records:
        raw_id = record.get("id") or None
        try:
            device = DeviceIn.model_validate(_to_fields(record))
        except ValidationError as exc:
            for err in exc.errors():
                field = ".".join(str(p) for p in err["loc"]) or None
                message = str(err["msg"]).removeprefix("Value error, ")
                errors.append(RowError(row=line, id=raw_id, field=field, message=message))
            continue
        except ValueError as exc:
            errors.append(RowError(row=line, id=raw_id, field="tags", message=str(exc)))
            continue
        problem = _placement_problem(device, scope, known_areas)
        if problem:
            errors.append(RowError(row=line, id=device.id, field="area", message=problem))
        elif device.id in seen:
            errors.append(
                RowError(
                    row=line,
                    id=device.id,
                    field="id",
                    message=f"id repeats row {seen[device.id]}",
                )
            )
        else:
            seen[device.id] = line
            valid.append((line, device))

    taken = await existing_ids(conn, [d.id for _, d in valid])
    for line, device in [v for v in valid if v[1].id in taken]:
        errors.append(RowError(row=line, id=device.id, field="id", message="device already exists"))
    valid = [v for v in valid if v[1].id not in taken]
    valid = await _without_taken_platform_ids(conn, valid, errors)
    errors.sort(key=lambda e: e.row)

    write = not dry_run and not (all_or_nothing and errors)
    credentials = (
        await create_devices_bulk(conn, [d for _, d in valid], seal_key=seal_key) if write else []
    )
    return ImportReport(
        dry_run=dry_run,
        all_or_nothing=all_or_nothing,
        rows=len(records),
        valid=len(valid),
        created=len(credentials),
        errors=errors,
        credentials=credentials,
    )


async def _without_taken_platform_ids(
    conn: AsyncConnection[DictRow], valid: list[tuple[int, DeviceIn]], errors: list[RowError]
) -> list[tuple[int, DeviceIn]]:
    """Rows whose carrier-platform identity another device (or an earlier row) has fail."""
    wanted = [(t, str(d.tags[t])) for _, d in valid for t in PLATFORM_TAGS if t in d.tags]
    taken = await taken_platform_ids(conn, wanted)
    kept: list[tuple[int, DeviceIn]] = []
    for line, device in valid:
        mine = [(t, str(device.tags[t])) for t in PLATFORM_TAGS if t in device.tags]
        clash = next((t for t, v in mine if (t, v) in taken), None)
        if clash:
            message = f"another device is registered with this {clash}"
            errors.append(RowError(row=line, id=device.id, field=f"tags.{clash}", message=message))
            continue
        taken.update(mine)
        kept.append((line, device))
    return kept


def _read_rows(text: str) -> list[tuple[int, dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise Invalid(f"CSV header lacks column(s): {', '.join(missing)}", field="header")
    unknown = [c for c in header if c not in REQUIRED + OPTIONAL]
    if unknown:
        raise Invalid(f"CSV header has unknown column(s): {', '.join(unknown)}", field="header")
    reader.fieldnames = header
    rows: list[tuple[int, dict[str, str]]] = []
    try:
        for record in reader:
            if len(rows) >= MAX_ROWS:
                raise Invalid(f"at most {MAX_ROWS} rows per import", field="body")
            if None in record:
                extra = record.pop(None)
                record["__extra__"] = ",".join(extra)
            rows.append((reader.line_num, record))
    except csv.Error as exc:
        raise Invalid(f"CSV line {reader.line_num}: {exc}", field="body") from None
    return rows


def _to_fields(record: dict[str, str]) -> dict[str, Any]:
    if "__extra__" in record:
        raise ValueError("row has more cells than the header has columns")
    fields: dict[str, Any] = {}
    for key, value in record.items():
        if value is None:
            raise ValueError(f"row has fewer cells than the header (no {key})")
        value = value.strip()
        if value == "":
            continue
        fields[key] = _parse_tags(value) if key == "tags" else value
    return fields


def _parse_tags(value: str) -> dict[str, Any]:
    """Tags as a JSON object or as `key=value;key=value`."""
    if value.startswith("{"):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"tags is not valid JSON: {exc.msg}") from None
        if not isinstance(parsed, dict):
            raise ValueError("tags must be a JSON object")
        return parsed
    tags: dict[str, Any] = {}
    for pair in value.split(";"):
        key, sep, val = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"tags must be key=value pairs separated by ';', got {pair!r}")
        tags[key.strip()] = val.strip()
    return tags


def _placement_problem(device: DeviceIn, scope: str, known_areas: set[str]) -> str | None:
    if not device.area.startswith(scope):
        return f"area {device.area} is outside your scope"
    if device.area not in known_areas:
        return f"area {device.area} is not registered"
    return None
