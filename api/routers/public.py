"""The residents' door: reports through a community's intake key (the QR code on its notice
board), a receipt to follow them, and a rating once closed (评价). No token: the key says
which community, the receipt says which report; each client has a budget of requests.

`/api/v1/intake-keys` is where admins and integrators make the keys."""

from __future__ import annotations

from datetime import UTC, datetime
from importlib.resources import files
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response, UploadFile
from fastapi.responses import HTMLResponse
from psycopg import AsyncConnection
from psycopg.rows import DictRow
from pydantic import BaseModel, ConfigDict, Field

from api.auth import Principal
from api.auth_limit import ClientBudget, FailedAuthentications
from api.deps import Conn, DbPool
from api.openapi import refusals
from api.permissions import Capability, allowed, public_route
from hub.errors import Conflict, Invalid, NotFound, TooManyRequests, Unauthorized
from hub.text import PlainText
from incidents import public
from incidents.actions import apply_action, still_to_do
from incidents.attachments import clean_image, store_attachment
from incidents.models import ActionIn
from incidents.reports import PublicReportIn, ReportIn, file_report
from incidents.sla import Sla
from incidents.states import Action, Status
from incidents.store import get_incident

router = APIRouter(tags=["public"])
page_router = APIRouter()
KeyManager = Annotated[Principal, Depends(allowed(Capability.MANAGE_INTAKE_KEYS))]
# A client that looks up receipts that do not exist is limited as one guessing tokens is.
GUESSING = (TooManyRequests, "too many unknown receipts from this client; see Retry-After")
Receipt = Annotated[str, Path(pattern=r"^[Ss][Bb]-[A-Za-z2-7]{20}$")]
_PAGE = files("api").joinpath("public_page.html").read_text(encoding="utf-8")


class PublicReceipt(BaseModel):
    receipt: str = Field(description="keep it: it follows the report and rates it")
    report: public.PublicStatus


class RatingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rating: int = Field(ge=1, le=5)
    comment: PlainText | None = Field(default=None, max_length=500)


class PublicPhoto(BaseModel):
    """A resident's photo as the resident sees it: no incident number, no uploader."""

    content_type: str
    size: int
    width: int
    height: int
    created_at: datetime


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def _receipt_incident(conn: AsyncConnection[DictRow], request: Request, receipt: str) -> int:
    """The incident behind a receipt. A receipt is a secret like a token: a client that looks
    up receipts that do not exist is limited as one guessing tokens is (429)."""
    guesses: FailedAuthentications = request.app.state.failed_auth
    guesses.check(_client(request))
    try:
        return await public.receipt_incident(conn, receipt)
    except NotFound:
        guesses.failed(_client(request))
        raise


def _budget(request: Request, name: str) -> None:
    """Spend one of the client's requests of this kind a minute; 429 when none is left."""
    settings = request.app.state.settings
    per_minute = (
        settings.public_reports_per_minute if name == "report" else settings.public_reads_per_minute
    )
    budgets: dict[str, ClientBudget] = request.app.state.public_budgets
    budget = budgets.setdefault(name, ClientBudget(per_minute, 60.0, what=f"{name} requests"))
    budget.check(_client(request))
    budget.spend(_client(request))


@router.post("/intake-keys", status_code=201)
async def create_intake_key(
    body: public.IntakeKeyIn, who: KeyManager, conn: Conn, request: Request
) -> public.IssuedIntakeKey:
    """A key for a community's notice board; shown this once. The QR code's address is
    `SB_PUBLIC_URL/r?key=<key>`."""
    who.require_area(body.area)
    return await public.create_intake_key(conn, body)


@router.get("/intake-keys")
async def list_intake_keys(who: KeyManager, conn: Conn) -> list[public.IntakeKey]:
    return await public.list_intake_keys(conn, scope=who.area_prefix)


@router.delete("/intake-keys/{key_id}", status_code=204)
async def revoke_intake_key(key_id: int, who: KeyManager, conn: Conn) -> Response:
    await public.revoke_intake_key(conn, key_id, scope=who.area_prefix)
    return Response(status_code=204)


# The residents' routes, which take no token, spend the client's budget before they take a
# connection (their own, not `Conn`): a flood of them is refused without draining the pool.
@router.post(
    "/public/reports",
    status_code=201,
    responses=refusals(
        (Unauthorized, "unknown or revoked intake key"),
        (TooManyRequests, "too many reports from this client"),
    ),
)
@public_route("a resident's report: the intake key decides its community; budgeted per client")
async def public_report(
    body: PublicReportIn,
    request: Request,
    pool: DbPool,
    key: Annotated[str | None, Query(max_length=80, description="the intake key")] = None,
    x_intake_key: Annotated[str | None, Header(max_length=80)] = None,
) -> PublicReceipt:
    """A resident's report, in the key's community; the answer carries the receipt."""
    _budget(request, "report")
    request.app.state.failed_auth.check(_client(request))  # guessing keys, like tokens
    given = x_intake_key or key or ""
    async with pool.connection() as conn, conn.transaction():
        found = await public.intake_area(conn, given)
        if found is None:
            request.app.state.failed_auth.failed(_client(request))
            raise Unauthorized("unknown or revoked intake key")
        key_id, area = found
        report = ReportIn(**body.model_dump(), area=area)
        incident = await file_report(
            conn,
            report,
            source="public",
            reported_by=f"public:intake-{key_id}",
            now=datetime.now(UTC),
            sla=Sla.from_settings(request.app.state.settings),
        )
        receipt = await public.issue_receipt(conn, incident.id)
    return PublicReceipt(receipt=receipt, report=public.public_status(receipt, incident))


@router.get("/public/reports/{receipt}", responses=refusals(GUESSING))
@public_route("the receipt is the secret; guessing is limited as for tokens")
async def public_report_status(
    receipt: Receipt, request: Request, pool: DbPool
) -> public.PublicStatus:
    _budget(request, "read")
    async with pool.connection() as conn:
        incident_id = await _receipt_incident(conn, request, receipt)
        incident = await get_incident(conn, incident_id, scope="")
    return public.public_status(receipt.upper(), incident)


@router.post("/public/reports/{receipt}/rating", responses=refusals(GUESSING, Conflict))
@public_route("the receipt is the secret; guessing is limited as for tokens")
async def rate_report(
    receipt: Receipt, body: RatingIn, request: Request, pool: DbPool
) -> public.PublicStatus:
    """Once the report is closed, once: 1 (poor) to 5 (very good)."""
    _budget(request, "read")
    async with pool.connection() as conn, conn.transaction():
        incident_id = await _receipt_incident(conn, request, receipt)
        current = await get_incident(conn, incident_id, scope="", for_update=True)
        # In the resident's words: the staff's actions and states are not theirs to know.
        if not still_to_do(current, Action.RATE, None):
            raise Conflict("this report has been rated already", field="rating")
        if current.status is not Status.CLOSED:
            raise Conflict("a report can be rated once it is closed", field="rating")
        incident = await apply_action(
            conn,
            incident_id,
            ActionIn(action=Action.RATE, rating=body.rating, note=body.comment),
            actor="resident",
            scope="",
            now=datetime.now(UTC),
        )
    return public.public_status(receipt.upper(), incident)


@router.post("/public/reports/{receipt}/attachments", status_code=201, responses=refusals(GUESSING))
@public_route("the receipt is the secret; guessing is limited as for tokens")
async def public_photo(
    receipt: Receipt, file: UploadFile, request: Request, pool: DbPool
) -> PublicPhoto:
    """A photo of what the report is about, while it is open."""
    _budget(request, "report")
    settings = request.app.state.settings
    picture = clean_image(
        await file.read(settings.max_attachment_bytes + 1), max_bytes=settings.max_attachment_bytes
    )
    async with pool.connection() as conn:
        incident_id = await _receipt_incident(conn, request, receipt)
        incident = await get_incident(conn, incident_id, scope="")
        if incident.closed_at is not None:
            raise Invalid("this report is closed", field="receipt")
        stored = await store_attachment(
            conn, settings.data_dir, incident_id, picture, by="resident"
        )
    return PublicPhoto(
        content_type=stored.content_type,
        size=stored.size,
        width=stored.width,
        height=stored.height,
        created_at=stored.created_at,
    )


@page_router.get("/r", response_class=HTMLResponse, include_in_schema=False)
@public_route("the residents' page: it calls the public routes above")
async def public_page() -> HTMLResponse:
    """The page a resident's phone opens from the QR code: report, follow, rate."""
    return HTMLResponse(
        _PAGE, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    )
