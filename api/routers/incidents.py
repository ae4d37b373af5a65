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

from api.auth import ALL_ROLES, Principal, allow
from api.deps import AreaFilter, Category, Cursor, DbPool, Limit, Reader
from api.tokens import Role
from hub.contracts import Priority
from hub.errors import Forbidden, NotFound
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
FIELD = frozenset({Role.GRID_WORKER, Role.UNIT_LINK})
# Dispatchers run the loop; operators may comment (say, on a rule's false alarm); field staff
# and a unit's link act on what is theirs.
Actor = Annotated[
    Principal, Depends(allow(frozenset({Role.ADMIN, Role.DISPATCHER, Role.OPERATOR}) | FIELD))
]
OneReader = Annotated[Principal, Depends(allow(ALL_ROLES | FIELD))]
FieldReader = Annotated[Principal, Depends(allow(ALL_ROLES | {Role.GRID_WORKER}))]
Reporter = Annotated[
    Principal,
    Depends(allow(frozenset({Role.ADMIN, Role.OPERATOR, Role.DISPATCHER, Role.GRID_WORKER}))),
]
Uploader = Annotated[
    Principal, Depends(allow(frozenset({Role.ADMIN, Role.OPERATOR, Role.DISPATCHER}) | FIELD))
]
FIELD_ACTIONS = frozenset(
    {
        Action.ACKNOWLEDGE,
        Action.START,
        Action.RESOLVE,
        Action.COMMENT,
        Action.REPORT_IN,
        Action.RATE_WHISTLE,
    }
)
# What a unit that was summoned (not dispatched) does on the incident: 报到 and its word.
SUMMONED_ACTIONS = frozenset(
    {Action.ACKNOWLEDGE, Action.REPORT_IN, Action.COMMENT, Action.RATE_WHISTLE}
)


async def _reach(conn: AsyncConnection[DictRow], who: Principal, incident_id: int) -> Incident:
    """The incident, if the caller may reach it: in its area, and for field staff theirs."""
    if who.role is Role.UNIT_LINK and who.incident_id != incident_id:
        raise Forbidden("this link is for another incident")
    incident = await store.get_incident(conn, incident_id, scope=who.area_prefix)
    if who.role is Role.GRID_WORKER and not _theirs(who, incident):
        raise NotFound(f"incident {incident_id} not found")
    return incident


async def _with_photos(
    conn: AsyncConnection[DictRow], incidents: list[Incident]
) -> list[IncidentWithPhotos]:
    photos = await attachments_of(conn, [i.id for i in incidents])
    return [IncidentWithPhotos(**i.model_dump(), attachments=photos[i.id]) for i in incidents]


def _theirs(who: Principal, incident: Incident) -> bool:
    return incident.reported_by == who.name or (
        who.unit_id is not None
        and (incident.unit_id == who.unit_id or _summoned(who.unit_id, incident))
    )


def _summoned(unit_id: str | None, incident: Incident) -> bool:
    return any(s.unit_id == unit_id for s in incident.summons)


def _own_report(who: Principal, incident: Incident) -> bool:
    """A grid worker's own report that no unit has yet, nor was summoned to: it works what it
    reported (design §6)."""
    return (
        who.role is Role.GRID_WORKER
        and incident.reported_by == who.name
        and incident.unit_id is None
        and not incident.summons
    )


def _as_unit(who: Principal, incident: Incident, body: ActionIn) -> ActionIn:
    """Field staff and links act for their own unit: on what was dispatched to it, or, when it
    was summoned, 报到 and its word only. A department rates its whistle itself."""
    if who.role not in FIELD:
        if body.action is Action.RATE_WHISTLE:
            raise Forbidden("a summoned unit rates its whistle itself (its link or its staff)")
        return body
    if body.unit_id is not None and body.unit_id != who.unit_id:
        raise Forbidden("field staff act for their own unit only")
    dispatched = (who.unit_id is not None and incident.unit_id == who.unit_id) or _own_report(
        who, incident
    )
    if who.role is Role.GRID_WORKER and body.action is Action.COMMENT:
        return body
    if not dispatched and not (
        _summoned(who.unit_id, incident) and body.action in SUMMONED_ACTIONS
    ):
        raise Forbidden("only the unit it was dispatched to works an incident")
    return body.model_copy(update={"unit_id": who.unit_id})


@router.post("/incidents", status_code=201)
async def report(body: ReportIn, request: Request, who: Reporter, pool: DbPool) -> Incident:
    """File a report: an incident in `reported`, `source: report`, with the reporter recorded;
    it runs through the same loop, deadlines and notifications as a rule's."""
    who.require_area(body.area)
    async with pool.connection() as conn, conn.transaction():
        return await file_report(
            conn,
            body,
            source="report",
            reported_by=who.name,
            now=datetime.now(UTC),
            sla=Sla.from_settings(request.app.state.settings),
        )


@router.get("/incidents")
async def list_incidents(
    who: FieldReader,
    pool: DbPool,
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
) -> Page[IncidentWithPhotos]:
    """Newest first, within the caller's area; `next` is the cursor of the following page."""
    wanted = status
    if open is not None:
        chosen = OPEN_STATUSES if open else [Status.CLOSED]
        wanted = [s for s in chosen if not status or s in status]
    mine = (who.name, who.unit_id) if who.role is Role.GRID_WORKER else None
    async with pool.connection() as conn:
        page = await store.list_incidents(
            conn,
            scope=who.area_prefix,
            status=wanted,
            area=area,
            category=category,
            priority=priority,
            since=since,
            source=source,
            mine=mine,
            limit=limit,
            cursor=cursor,
        )
        items = await _with_photos(conn, page.items)
    return Page[IncidentWithPhotos](items=items, next=page.next)


@router.get("/incidents/{incident_id}")
async def get_incident(incident_id: int, who: OneReader, pool: DbPool) -> IncidentWithPhotos:
    """The incident with its photos (`attachments`), each at its `url`."""
    async with pool.connection() as conn:
        return (await _with_photos(conn, [await _reach(conn, who, incident_id)]))[0]


@router.get("/incidents/{incident_id}/audit")
async def audit(incident_id: int, who: Reader, pool: DbPool) -> list[AuditEntry]:
    async with pool.connection() as conn:
        return await store.audit_trail(conn, incident_id, scope=who.area_prefix)


@router.post("/incidents/{incident_id}/actions")
async def act(
    incident_id: int, body: ActionIn, request: Request, who: Actor, pool: DbPool
) -> Incident:
    """Apply an action; 409 when the incident's state does not allow it. Field staff and a
    unit's link may acknowledge, start (on site), resolve and comment, on what is theirs; a
    unit summoned to it (吹哨报到) may acknowledge, report_in, comment and rate_whistle.
    `summon` (dispatchers): `unit_ids`, optional `lead`; `report_in`: `unit_id`; after close
    `rate_unit` (`unit_id`, `rating`, `comment`) and, for 日常哨, `flag_unit` (`flags`)."""
    if who.role is Role.OPERATOR and body.action is not Action.COMMENT:
        raise Forbidden("operators may only comment on incidents")
    if who.role in FIELD and body.action not in FIELD_ACTIONS:
        raise Forbidden(f"field staff may not {body.action.value}")
    now = datetime.now(UTC)
    async with pool.connection() as conn, conn.transaction():
        incident = await _reach(conn, who, incident_id)
        if _own_report(who, incident) and body.action is not Action.COMMENT:
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
        body = _as_unit(who, incident, body)
        return await apply_action(
            conn,
            incident_id,
            body,
            actor=who.name,
            scope=who.area_prefix,
            now=now,
            sla=Sla.from_settings(request.app.state.settings),
        )


@router.post(
    "/incidents/{incident_id}/attachments",
    status_code=201,
    responses={413: {"description": "the picture is too large"}},
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
    async with pool.connection() as conn:
        await _reach(conn, who, incident_id)
        return await store_attachment(conn, settings.data_dir, incident_id, picture, by=who.name)


@router.get("/incidents/{incident_id}/attachments")
async def attachments(incident_id: int, who: OneReader, pool: DbPool) -> list[Attachment]:
    async with pool.connection() as conn:
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
    pool: DbPool,
) -> FileResponse:
    """A photo of the incident, for whoever may see the incident (its `url` there)."""
    async with pool.connection() as conn:
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
    attachment_id: Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")], who: OneReader, pool: DbPool
) -> FileResponse:
    """The picture, to whoever may see its incident: field staff and a unit's link only theirs."""
    async with pool.connection() as conn:
        stored = await attachment_file(conn, attachment_id, scope=who.area_prefix)
        if who.role in FIELD:
            try:
                await _reach(conn, who, stored.incident_id)
            except (Forbidden, NotFound):
                raise NotFound(f"attachment {attachment_id} not found") from None
    return FileResponse(stored.path, media_type=stored.content_type)
