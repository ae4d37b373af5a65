"""/api/v1/incidents: the command centre's loop, report → accept → dispatch → ... → close.

Field staff (`grid_worker`) report in their area and see and work only what they reported or
what was dispatched or summoned to their unit; a dispatched or summoned unit's link reaches its
one incident."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, UploadFile
from fastapi.responses import FileResponse
from psycopg import AsyncConnection
from psycopg.rows import DictRow
from pydantic import Field

from api.auth import Principal
from api.deps import AreaFilter, Category, Conn, Cursor, DbPool, Limit, Reader
from api.openapi import refusals
from api.permissions import (
    Capability,
    allowed,
    allowed_actions,
    as_unit,
    check_action,
    for_unit,
    own_only,
    own_report,
    reaches,
    sees,
)
from hub.contracts import Priority
from hub.errors import Conflict, Forbidden, NotFound, TooLarge
from hub.paging import Page
from hub.times import Moment
from incidents import store
from incidents.actions import apply_action, take_on
from incidents.attachments import (
    Attachment,
    IncidentWithPhotos,
    attachment_file,
    attachments_of,
    clean_image,
    list_attachments,
    store_attachment,
)
from incidents.models import ActionIn, AuditEntry, Incident
from incidents.reports import ReportIn, file_report
from incidents.sla import Sla
from incidents.states import OPEN_STATUSES, Action, Status

router = APIRouter(tags=["incidents"])
Actor = Annotated[Principal, Depends(allowed(Capability.ACT_ON_INCIDENT))]
OneReader = Annotated[Principal, Depends(allowed(Capability.READ_INCIDENT))]
ListReader = Annotated[Principal, Depends(allowed(Capability.LIST_INCIDENTS))]
Reporter = Annotated[Principal, Depends(allowed(Capability.REPORT_INCIDENT))]
Uploader = Annotated[Principal, Depends(allowed(Capability.ATTACH_PHOTO))]
AllowedActions = Annotated[
    list[Action],
    Field(
        description="what the caller may do on it now: what its role takes, on what is within"
        " its reach, that the incident's state allows (api/permissions.py); the API checks"
        " each action again when it comes"
    ),
]


class IncidentForCaller(Incident):
    """An incident as one caller is answered it: with what that caller may do on it."""

    allowed_actions: AllowedActions


class IncidentWithPhotosForCaller(IncidentWithPhotos):
    allowed_actions: AllowedActions


def _for(who: Principal, incident: Incident) -> IncidentForCaller:
    actions = allowed_actions(who, incident)
    return IncidentForCaller(**incident.model_dump(), allowed_actions=actions)


async def _reach(conn: AsyncConnection[DictRow], who: Principal, incident_id: int) -> Incident:
    """The incident, if the caller may reach it: in its area, and for field staff theirs."""
    if not reaches(who, incident_id):
        raise Forbidden("this link is for another incident")
    incident = await store.get_incident(conn, incident_id, scope=who.area_prefix)
    if not sees(who, incident):
        raise NotFound(f"incident {incident_id} not found")
    return incident


async def _with_photos(
    conn: AsyncConnection[DictRow], who: Principal, incidents: list[Incident]
) -> list[IncidentWithPhotosForCaller]:
    photos = await attachments_of(conn, [i.id for i in incidents])
    return [
        IncidentWithPhotosForCaller(
            **i.model_dump(), attachments=photos[i.id], allowed_actions=allowed_actions(who, i)
        )
        for i in incidents
    ]


@router.post("/incidents", status_code=201)
async def report(body: ReportIn, request: Request, who: Reporter, conn: Conn) -> IncidentForCaller:
    """File a report: an incident in `reported`, `source: report`, with the reporter recorded;
    it runs through the same loop, deadlines and notifications as a rule's."""
    who.require_area(body.area)
    async with conn.transaction():
        incident = await file_report(
            conn,
            body,
            source="report",
            reported_by=who.name,
            now=datetime.now(UTC),
            sla=Sla.from_settings(request.app.state.settings),
        )
    return _for(who, incident)


@router.get("/incidents")
async def list_incidents(
    who: ListReader,
    conn: Conn,
    status: Annotated[
        list[Status] | None,
        Query(description="repeat for several: ?status=reported&status=accepted"),
    ] = None,
    open: Annotated[bool | None, Query(description="true: every state but closed")] = None,
    area: AreaFilter = None,
    category: Category = None,
    priority: Priority | None = None,
    source: Literal["rule", "report", "public"] | None = None,
    since: Moment | None = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Page[IncidentWithPhotosForCaller]:
    """Newest first, within the caller's area; `next` is the cursor of the following page."""
    wanted = status
    if open is not None:
        chosen = OPEN_STATUSES if open else [Status.CLOSED]
        wanted = [s for s in chosen if not status or s in status]
    page = await store.list_incidents(
        conn,
        scope=who.area_prefix,
        status=wanted,
        area=area,
        category=category,
        priority=priority,
        since=since,
        source=source,
        mine=own_only(who),
        limit=limit,
        cursor=cursor,
    )
    items = await _with_photos(conn, who, page.items)
    return Page[IncidentWithPhotosForCaller](items=items, next=page.next)


@router.get("/incidents/{incident_id}")
async def get_incident(incident_id: int, who: OneReader, conn: Conn) -> IncidentWithPhotosForCaller:
    """The incident with its photos (`attachments`), each at its `url`, and what the caller
    may do on it now (`allowed_actions`)."""
    return (await _with_photos(conn, who, [await _reach(conn, who, incident_id)]))[0]


@router.get("/incidents/{incident_id}/audit")
async def audit(incident_id: int, who: Reader, conn: Conn) -> list[AuditEntry]:
    return await store.audit_trail(conn, incident_id, scope=who.area_prefix)


@router.post("/incidents/{incident_id}/actions", responses=refusals(Conflict))
async def act(
    incident_id: int, body: ActionIn, request: Request, who: Actor, conn: Conn
) -> IncidentForCaller:
    """Apply an action; 409 when the incident's state does not allow it. Field staff and a
    unit's link may acknowledge, start (on site), resolve and comment, on what is theirs; a
    unit summoned to it (吹哨报到) may acknowledge, report_in, comment and rate_whistle.
    `summon` (dispatchers): `unit_ids`, optional `lead`; `report_in`: `unit_id`; after close
    `rate_unit` (`unit_id`, `rating`, `comment`) and, for 日常哨, `flag_unit` (`flags`)."""
    check_action(who, body.action)
    now = datetime.now(UTC)
    async with conn.transaction():
        incident = await _reach(conn, who, incident_id)
        if own_report(who, incident) and body.action is not Action.COMMENT:
            await take_on(
                conn,
                incident.id,
                body.action,
                actor=who.name,
                unit_id=who.unit_id,
                scope=who.area_prefix,
                now=now,
            )
            incident = await _reach(conn, who, incident_id)
        body = as_unit(who, incident, body)
        acted = await apply_action(
            conn,
            incident_id,
            body,
            actor=who.name,
            scope=who.area_prefix,
            now=now,
            sla=Sla.from_settings(request.app.state.settings),
        )
    return _for(who, acted)


@router.post(
    "/incidents/{incident_id}/attachments",
    status_code=201,
    responses=refusals((TooLarge, "the picture is too large")),
)
async def attach_photo(
    incident_id: int, file: UploadFile, request: Request, who: Uploader, pool: DbPool
) -> Attachment:
    """A photo (multipart field `file`): JPEG or PNG as its bytes say, at most
    SB_MAX_ATTACHMENT_BYTES, stored without its EXIF and listed on the incident."""
    settings = request.app.state.settings
    picture = clean_image(
        await file.read(settings.max_attachment_bytes + 1), max_bytes=settings.max_attachment_bytes
    )
    # A connection of its own, taken once the picture is cleaned (not `Conn`).
    async with pool.connection() as conn:
        await _reach(conn, who, incident_id)
        return await store_attachment(conn, settings.data_dir, incident_id, picture, by=who.name)


@router.get("/incidents/{incident_id}/attachments")
async def attachments(incident_id: int, who: OneReader, conn: Conn) -> list[Attachment]:
    await _reach(conn, who, incident_id)
    return await list_attachments(conn, incident_id)


@router.get(
    "/incidents/{incident_id}/attachments/{attachment_id}",
    response_class=FileResponse,
    responses={200: {"content": {"image/jpeg": {}, "image/png": {}}}},
)
async def incident_photo(
    incident_id: int,
    attachment_id: Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")],
    who: OneReader,
    conn: Conn,
) -> FileResponse:
    """A photo of the incident, for whoever may see the incident (its `url` there)."""
    await _reach(conn, who, incident_id)
    stored = await attachment_file(
        conn, attachment_id, scope=who.area_prefix, incident_id=incident_id
    )
    return FileResponse(stored.path, media_type=stored.content_type)


@router.get(
    "/attachments/{attachment_id}",
    response_class=FileResponse,
    responses={200: {"content": {"image/jpeg": {}, "image/png": {}}}},
)
async def attachment(
    attachment_id: Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")], who: OneReader, conn: Conn
) -> FileResponse:
    """The picture, to whoever may see its incident: field staff and a unit's link only theirs."""
    stored = await attachment_file(conn, attachment_id, scope=who.area_prefix)
    if for_unit(who):
        try:
            await _reach(conn, who, stored.incident_id)
        except (Forbidden, NotFound):
            raise NotFound(f"attachment {attachment_id} not found") from None
    return FileResponse(stored.path, media_type=stored.content_type)
