"""CSV bulk registration of devices, with a dry run and a per-row error report."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from psycopg import AsyncConnection
from psycopg.rows import DictRow
from pydantic import BaseModel, ValidationError

from devices.areas import existing_areas
from devices.models import CameraIn, Credentials, DeviceIn, DeviceType
from devices.registry import PLATFORM_TAGS, create_devices_bulk, existing_ids, taken_platform_ids
from hub.csv_files import csv_reader, records
from hub.errors import Invalid

REQUIRED = ("id", "type", "area")
OPTIONAL = ("site", "building", "floor", "lat", "lon", "tags")
MAX_ROWS = 10_000
Row = TypeVar("Row", DeviceIn, CameraIn)


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
    rows = read_table(text, REQUIRED, OPTIONAL)
    valid, errors = await checked_rows(conn, rows, DeviceIn, scope=scope)
    write = not dry_run and not (all_or_nothing and errors)
    credentials = (
        await create_devices_bulk(conn, [d for _, d in valid], seal_key=seal_key) if write else []
    )
    return import_report(
        rows, valid, errors, credentials, dry_run=dry_run, all_or_nothing=all_or_nothing
    )


def import_report(
    rows: list[tuple[int, dict[str, str]]],
    valid: list[tuple[int, Row]],
    errors: list[RowError],
    credentials: list[Credentials],
    *,
    dry_run: bool,
    all_or_nothing: bool,
) -> ImportReport:
    """What an import of `rows` did: the valid, the errors and what was created."""
    return ImportReport(
        dry_run=dry_run,
        all_or_nothing=all_or_nothing,
        rows=len(rows),
        valid=len(valid),
        created=len(credentials),
        errors=errors,
        credentials=credentials,
    )


async def checked_rows(
    conn: AsyncConnection[DictRow],
    rows: list[tuple[int, dict[str, str]]],
    model: type[Row],
    *,
    scope: str,
) -> tuple[list[tuple[int, Row]], list[RowError]]:
    """The rows that make a valid `model` placed in `scope`, new to the registry and to the
    file; the others as errors by line number."""
    known_areas = await existing_areas(conn, {r.get("area") or "" for _, r in rows})
    errors: list[RowError] = []
    valid: list[tuple[int, Row]] = []
    seen: dict[str, int] = {}
    for line, record in rows:
        item = _validated(model, line, record, errors)
        if item is None:
            continue
        problem = _placement_problem(item, scope, known_areas)
        if problem:
            errors.append(RowError(row=line, id=item.id, field=problem[0], message=problem[1]))
        elif item.id in seen:
            message = f"id repeats row {seen[item.id]}"
            errors.append(RowError(row=line, id=item.id, field="id", message=message))
        else:
            seen[item.id] = line
            valid.append((line, item))

    taken = await existing_ids(conn, [d.id for _, d in valid])
    for line, item in [v for v in valid if v[1].id in taken]:
        errors.append(RowError(row=line, id=item.id, field="id", message="device already exists"))
    valid = [v for v in valid if v[1].id not in taken]
    valid = await _without_taken_platform_ids(conn, valid, errors)
    errors.sort(key=lambda e: e.row)
    return valid, errors


def _validated(
    model: type[Row], line: int, record: dict[str, str], errors: list[RowError]
) -> Row | None:
    raw_id = record.get("id") or None
    try:
        return model.model_validate(_to_fields(record))
    except ValidationError as exc:
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or None
            message = str(err["msg"]).removeprefix("Value error, ")
            errors.append(RowError(row=line, id=raw_id, field=field, message=message))
    except CellError as exc:
        errors.append(RowError(row=line, id=raw_id, field=exc.field, message=str(exc)))
    return None


async def _without_taken_platform_ids(
    conn: AsyncConnection[DictRow], valid: list[tuple[int, Row]], errors: list[RowError]
) -> list[tuple[int, Row]]:
    """Rows whose carrier-platform identity another device (or an earlier row) has fail."""
    wanted = [(t, str(d.tags[t])) for _, d in valid for t in PLATFORM_TAGS if t in d.tags]
    taken = await taken_platform_ids(conn, wanted)
    kept: list[tuple[int, Row]] = []
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
    return read_table(text, REQUIRED, OPTIONAL)


def read_table(
    text: str, required: tuple[str, ...], optional: tuple[str, ...]
) -> list[tuple[int, dict[str, str]]]:
    """Rows with their line numbers, once the header names every required column and no
    unknown one; cells past the header's columns are kept under `__extra__`."""
    reader = csv_reader(text)
    header = list(reader.fieldnames or [])
    missing = [c for c in required if c not in header]
    if missing:
        raise Invalid(f"CSV header lacks column(s): {', '.join(missing)}", field="header")
    unknown = [c for c in header if c not in required + optional]
    if unknown:
        raise Invalid(f"CSV header has unknown column(s): {', '.join(unknown)}", field="header")
    rows: list[tuple[int, dict[str, str]]] = []
    for record in records(reader):
        if len(rows) >= MAX_ROWS:
            raise Invalid(f"at most {MAX_ROWS} rows per import", field="body")
        cells: dict[str, str] = {k: v for k, v in record.items() if k is not None}
        if None in record:
            cells["__extra__"] = ",".join(record[None])
        rows.append((reader.line_num, cells))
    return rows


class CellError(ValueError):
    """A cell that cannot even be read (bad JSON, a row of the wrong length)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


# Cells holding JSON (a JSON object or list as the cell's text, quoted as CSV quotes it).
JSON_CELLS = ("zones", "settings")


def _to_fields(record: dict[str, str]) -> dict[str, Any]:
    if "__extra__" in record:
        # Usually an unquoted comma in the last column (tags `a=1,b=2`): named as that cell.
        last = [k for k in record if k != "__extra__"][-1]
        raise CellError(last, "row has more cells than the header has columns")
    fields: dict[str, Any] = {}
    for key, value in record.items():
        if value is None:
            raise CellError(key, f"row has fewer cells than the header (no {key})")
        value = value.strip()
        if value == "":
            continue
        if key == "tags":
            fields[key] = _parse_tags(value)
        elif key in JSON_CELLS:
            fields[key] = _parse_json(key, value)
        else:
            fields[key] = value
    return fields


def _parse_json(key: str, value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise CellError(key, f"{key} is not valid JSON: {exc.msg}") from None


def _parse_tags(value: str) -> dict[str, Any]:
    """Tags as a JSON object or as `key=value;key=value`."""
    if value.startswith("{"):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as exc:
            raise CellError("tags", f"tags is not valid JSON: {exc.msg}") from None
        if not isinstance(parsed, dict):
            raise CellError("tags", "tags must be a JSON object")
        return parsed
    tags: dict[str, Any] = {}
    for pair in value.split(";"):
        key, sep, val = pair.partition("=")
        if not sep or not key.strip():
            raise CellError("tags", f"tags must be key=value pairs separated by ';', got {pair!r}")
        tags[key.strip()] = val.strip()
    return tags


def _placement_problem(item: Row, scope: str, known_areas: set[str]) -> tuple[str, str] | None:
    """(field, message) of what is wrong with where the row puts its device."""
    if isinstance(item, DeviceIn) and item.type is DeviceType.CAMERA:
        return "type", "cameras are imported at /api/v1/cameras/import (they need a stream)"
    if not item.area.startswith(scope):
        return "area", f"area {item.area} is outside your scope"
    if item.area not in known_areas:
        return "area", f"area {item.area} is not registered"
    return None
