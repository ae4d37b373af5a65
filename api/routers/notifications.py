"""/api/v1/notifications (the delivery log, by the incidents' area) and /api/v1/templates
(what messages say; shared by every area, so changed by admins and all-area operators)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query

from api.auth import Principal
from api.deps import Conn, Cursor, Limit, Reader
from api.permissions import Capability, allowed
from hub.errors import Forbidden
from hub.paging import Page
from notify.log import list_notifications
from notify.models import Notification
from notify.template_store import all_templates, put_template, reset_template
from notify.templates import MessageKind, Template, TemplateIn

router = APIRouter(tags=["notifications"])
TemplateWriter = Annotated[Principal, Depends(allowed(Capability.EDIT_TEMPLATES))]
Language = Literal["zh-CN", "en"]


@router.get("/notifications")
async def notifications(
    who: Reader,
    conn: Conn,
    incident_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    channel: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,64}$")] = None,
    status: Literal["pending", "sending", "delivered", "failed"] | None = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Page[Notification]:
    """What was sent about the incidents of your area: attempts, last answer, timestamps."""
    return await list_notifications(
        conn,
        scope=who.area_prefix,
        incident_id=incident_id,
        channel_id=channel,
        status=status,
        limit=limit,
        cursor=cursor,
    )


@router.get("/templates")
async def templates(who: Reader, conn: Conn) -> list[Template]:
    return await all_templates(conn)


def _everywhere(who: Principal) -> None:
    if who.area_prefix:
        raise Forbidden(
            "templates are shared by every area: an all-area operator or an admin changes them"
        )


@router.put("/templates/{kind}/{language}")
async def change_template(
    kind: MessageKind, language: Language, body: TemplateIn, who: TemplateWriter, conn: Conn
) -> Template:
    """Placeholders: `{title}`, `{place}`, `{priority_label}`, `{link}`, ... (a 422 lists
    them all); one without a value renders empty."""
    _everywhere(who)
    return await put_template(conn, kind, language, body, by=who.name)


@router.delete("/templates/{kind}/{language}")
async def restore_template(
    kind: MessageKind, language: Language, who: TemplateWriter, conn: Conn
) -> Template:
    """Back to the built-in wording."""
    _everywhere(who)
    return await reset_template(conn, kind, language)
