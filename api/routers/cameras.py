"""/api/v1/cameras"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from api.auth import Principal
from api.deps import AreaFilter, Conn, DbPool, Limit, Reader, Registrar
from api.openapi import refusals
from api.permissions import Capability, allowed
from api.uploads import csv_text
from devices import cameras, registry
from devices.camera_import import import_cameras
from devices.cameras import public_view
from devices.csv_import import ImportReport
from devices.models import Camera, CameraIn, CameraUpdate, CameraWithCredentials, ZonesIn
from hub.errors import Conflict, UnsupportedMediaType
from hub.paging import Page
from vision import stats as vision_stats
from vision.status import VisionState, vision_state

router = APIRouter(prefix="/cameras", tags=["cameras"])
ZoneWriter = Annotated[Principal, Depends(allowed(Capability.EDIT_ZONES))]


@router.post("", status_code=201, responses=refusals(Conflict))
async def create_camera(body: CameraIn, who: Registrar, conn: Conn) -> CameraWithCredentials:
    """Register a camera with its stream and zones; credentials are shown only this once."""
    who.require_area(body.area)
    created = await cameras.create_camera(conn, body)
    shown = public_view(created)
    return created.model_copy(
        update={"stream_url": shown.stream_url, "detect_url": shown.detect_url}
    )


@router.post("/import", responses=refusals(UnsupportedMediaType))
async def import_csv(
    request: Request,
    who: Registrar,
    pool: DbPool,
    dry_run: Annotated[bool, Query(description="validate only, write nothing")] = False,
    all_or_nothing: Annotated[bool, Query(description="write nothing if any row is bad")] = False,
) -> ImportReport:
    """Register cameras from CSV (`id,area,stream_url` and optionally `detect_url,fps,site,
    building,floor,lat,lon,tags,zones,settings`; `zones` and `settings` as JSON in their cell).

    Send the file as the body (`Content-Type: text/csv`) or as a multipart field `file`.
    """
    text = await csv_text(request)
    # A connection of its own, taken once the body is read and checked (not `Conn`).
    async with pool.connection() as conn:
        return await import_cameras(
            conn, text, scope=who.area_prefix, dry_run=dry_run, all_or_nothing=all_or_nothing
        )


@router.get("")
async def list_cameras(
    who: Reader,
    conn: Conn,
    area: AreaFilter = None,
    enabled: bool | None = None,
    device_id: Annotated[
        str | None, Query(max_length=64, description="the channels of this GB/T 28181 device")
    ] = None,
    limit: Limit = 100,
    cursor: str | None = None,
) -> Page[Camera]:
    page = await cameras.list_cameras(
        conn,
        scope=who.area_prefix,
        area=area,
        enabled=enabled,
        device_id=device_id,
        limit=limit,
        cursor=cursor,
    )
    return Page[Camera](items=[public_view(c) for c in page.items], next=page.next)


@router.get("/{camera_id}")
async def get_camera(camera_id: str, who: Reader, conn: Conn) -> Camera:
    return public_view(await cameras.get_camera(conn, camera_id, scope=who.area_prefix))


@router.patch("/{camera_id}")
async def update_camera(camera_id: str, body: CameraUpdate, who: Registrar, conn: Conn) -> Camera:
    updated = await cameras.update_camera(conn, camera_id, body, scope=who.area_prefix)
    return public_view(updated)


@router.put("/{camera_id}/zones")
async def set_zones(camera_id: str, body: ZonesIn, who: ZoneWriter, conn: Conn) -> Camera:
    """Replace the camera's analytics zones."""
    updated = await cameras.set_zones(conn, camera_id, body.zones, scope=who.area_prefix)
    return public_view(updated)


@router.delete("/{camera_id}", status_code=204)
async def delete_camera(camera_id: str, who: Registrar, conn: Conn) -> Response:
    await cameras.get_camera(conn, camera_id, scope=who.area_prefix)
    await registry.delete_device(conn, camera_id, scope=who.area_prefix)
    return Response(status_code=204)


@router.get("/{camera_id}/stats")
async def camera_stats(camera_id: str, request: Request, who: Reader, conn: Conn) -> dict[str, Any]:
    """What the camera's vision worker last reported: rates, counts, reconnects, line counts;
    `stream: not_analysed` with the `reason` when no worker has analysed it."""
    settings = request.app.state.settings
    camera = await cameras.get_camera(conn, camera_id, scope=who.area_prefix)
    found = await vision_stats.camera_stats(conn, camera_id)
    if found is not None:
        return found
    vision = await vision_state(conn, timedelta(seconds=settings.vision_lease_s))
    return {
        "camera_id": camera_id,
        "stream": "not_analysed",
        "reason": not_analysed_because(camera, vision),
    }


def not_analysed_because(camera: Camera, vision: VisionState) -> str:
    if not camera.enabled:
        return "the camera is disabled"
    if vision.state == "off":
        return f"vision is off: {vision.reason}"
    return "no vision worker has taken it yet"
