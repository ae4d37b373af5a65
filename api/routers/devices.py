"""/api/v1/devices"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from psycopg import AsyncConnection
from psycopg.rows import DictRow

from api.deps import AreaFilter, Conn, Cursor, DbPool, Limit, Reader, Registrar
from api.openapi import refusals
from api.uploads import csv_text
from devices import registry
from devices.csv_import import ImportReport, import_devices
from devices.models import (
    Credentials,
    Device,
    DeviceIn,
    DeviceType,
    DeviceUpdate,
    DeviceWithCredentials,
)
from hub.errors import Conflict, Invalid, UnsupportedMediaType
from hub.paging import Page
from hub.secret import hmac_key
from hub.times import Moment
from ingest.state_reads import DeviceState, StateFilter, state_condition, states_of
from ingest.telemetry import TelemetryBucket, bucketed, parse_bucket

router = APIRouter(prefix="/devices", tags=["devices"])


class DeviceWithState(Device):
    state: DeviceState


async def _with_state(
    conn: AsyncConnection[DictRow], devices: list[Device]
) -> list[DeviceWithState]:
    states = await states_of(conn, [d.id for d in devices])
    return [DeviceWithState(**d.model_dump(), state=states[d.id]) for d in devices]


@router.post("", status_code=201, responses=refusals(Conflict))
async def create_device(
    body: DeviceIn, who: Registrar, conn: Conn, request: Request
) -> DeviceWithCredentials:
    """Register a device. The response carries its credentials (MQTT, or a gb28181 device's
    SIP digest password with its GB id as the username), shown only this once."""
    who.require_area(body.area)
    if body.type is DeviceType.CAMERA:
        raise Invalid("register cameras at /api/v1/cameras (they need a stream)", field="type")
    return await registry.create_device(conn, body, seal_key=_seal_key(request))


def _seal_key(request: Request) -> bytes:
    return hmac_key(request.app.state.settings)


@router.get("")
async def list_devices(
    who: Reader,
    conn: Conn,
    area: AreaFilter = None,
    type: DeviceType | None = None,
    enabled: bool | None = None,
    online: Annotated[bool | None, Query(description="false: offline or never connected")] = None,
    battery_below: Annotated[float | None, Query(ge=0, le=100, description="percent")] = None,
    silent_since: Annotated[
        Moment | None, Query(description="heard nothing since then (never counts)")
    ] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Page[DeviceWithState]:
    """Devices by id, each with what the hub knows of its state."""
    wanted = StateFilter(online=online, battery_below=battery_below, silent_since=silent_since)
    page = await registry.list_devices(
        conn,
        scope=who.area_prefix,
        area=area,
        type=type,
        enabled=enabled,
        also=state_condition(wanted),
        limit=limit,
        cursor=cursor,
    )
    return Page[DeviceWithState](items=await _with_state(conn, page.items), next=page.next)


@router.post("/import", responses=refusals(UnsupportedMediaType))
async def import_csv(
    request: Request,
    who: Registrar,
    pool: DbPool,
    dry_run: Annotated[bool, Query(description="validate only, write nothing")] = False,
    all_or_nothing: Annotated[bool, Query(description="write nothing if any row is bad")] = False,
) -> ImportReport:
    """Register devices from CSV (`id,type,area,site,building,floor,lat,lon,tags`).

    Send the file as the body (`Content-Type: text/csv`) or as a multipart field `file`.
    """
    text = await csv_text(request)
    # A connection of its own, taken once the body is read and checked (not `Conn`).
    async with pool.connection() as conn:
        return await import_devices(
            conn,
            text,
            scope=who.area_prefix,
            dry_run=dry_run,
            all_or_nothing=all_or_nothing,
            seal_key=_seal_key(request),
        )


@router.get("/{device_id}")
async def get_device(device_id: str, who: Reader, conn: Conn) -> DeviceWithState:
    """The device and its state: online, last seen, battery, RSSI, firmware."""
    device = await registry.get_device(conn, device_id, scope=who.area_prefix)
    return (await _with_state(conn, [device]))[0]


@router.get("/{device_id}/telemetry")
async def telemetry(
    device_id: str,
    who: Reader,
    conn: Conn,
    start: Annotated[Moment, Query(alias="from")],
    end: Annotated[Moment, Query(alias="to")],
    bucket: str = "1h",
    metric: str | None = None,
) -> list[TelemetryBucket]:
    """Readings averaged (with min, max, count) per bucket: `?from=...&to=...&bucket=5m`."""
    span = parse_bucket(bucket)
    await registry.get_device(conn, device_id, scope=who.area_prefix)
    return await bucketed(conn, device_id, start, end, span, metric=metric)


@router.patch("/{device_id}", responses=refusals(Conflict))
async def update_device(device_id: str, body: DeviceUpdate, who: Registrar, conn: Conn) -> Device:
    """Move, relabel, enable or disable a device (`{"enabled": false}` locks it out)."""
    if body.area is not None:
        who.require_area(body.area)
    return await registry.update_device(conn, device_id, body, scope=who.area_prefix)


@router.post("/{device_id}/catalog", status_code=202)
async def refresh_catalog(device_id: str, who: Registrar, conn: Conn) -> dict[str, str]:
    """Ask a gb28181 device for its catalog again (its channels become cameras); the answer
    comes in over SIP, so this returns at once."""
    async with conn.transaction():
        await registry.request_catalog(conn, device_id, scope=who.area_prefix)
    return {"status": "requested"}


@router.post("/{device_id}/credentials")
async def rotate_credentials(
    device_id: str, who: Registrar, conn: Conn, request: Request
) -> Credentials:
    """Issue a new password (MQTT, or a gb28181 device's SIP digest one); the old one stops
    working."""
    return await registry.rotate_credentials(
        conn, device_id, scope=who.area_prefix, seal_key=_seal_key(request)
    )


@router.delete("/{device_id}", status_code=204)
async def delete_device(device_id: str, who: Registrar, conn: Conn) -> Response:
    await registry.delete_device(conn, device_id, scope=who.area_prefix)
    return Response(status_code=204)
