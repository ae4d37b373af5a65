"""/api/v1/push/ctwing and /api/v1/push/onenet: carrier IoT platforms pushing device data.

The platforms retry a push that is not answered 2xx (CTWing three times, OneNET up to 16 times
over 2 h 45 min), so a push is answered 200 only when what it carried is stored (or was
stored before: a retry). One the hub cannot use is kept as a dead letter and answered 422
with the reason; a database outage is a 503, so the platform tries again.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ValidationError

from api.auth import Principal
from api.deps import DbPool
from api.openapi import refusals
from api.permissions import Capability, allowed_in_url, public_route
from hub.errors import Forbidden, HubError, Invalid, NotFound, Unavailable
from hub.secret import hmac_key
from ingest.carriers import ctwing, onenet
from ingest.carriers.receiver import deliver, reject, resolve_device
from ingest.decode import Reason
from ingest.pipeline import Pipeline
from ingest.registry_view import RegistryView
from ingest.store import BatchResult

router = APIRouter(prefix="/push", tags=["push"])
Pusher = Annotated[Principal, Depends(allowed_in_url(Capability.PUSH_DEVICE_DATA))]
_PUSH_ERRORS = (
    (Invalid, "nothing stored: the dead letter's reason (schema, unknown_device)"),
    (Unavailable, "the database is unavailable: push again later"),
)
_BAD_SIGNATURE = (Forbidden, "bad signature")


class PushRejected(HubError):
    """A push we kept as a dead letter; 422 so the platform does not count it delivered."""

    status = 422

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.code = reason


class PushResult(BaseModel):
    result: str
    accepted: int
    rejected: dict[str, int]


def _pipeline(request: Request) -> Pipeline:
    # A fresh registry view per request: pushes are rare enough to look devices up each time.
    return Pipeline(RegistryView(), hmac_key(request.app.state.settings))


def _answer(result: BatchResult) -> PushResult:
    """200 when something was stored now or before (a retried push is a duplicate)."""
    stored = result.accepted + result.rejected.get(Reason.DUPLICATE.value, 0)
    if stored == 0:
        reasons = ", ".join(f"{k} ×{n}" for k, n in result.rejected.items()) or "nothing to store"
        first = next(iter(result.rejected), Reason.SCHEMA.value)
        raise PushRejected(first, f"nothing stored: {reasons} (see /api/v1/dead-letters)")
    return PushResult(result="ok", accepted=result.accepted, rejected=dict(result.rejected))


@router.post("/ctwing", responses=refusals(*_PUSH_ERRORS))
async def ctwing_push(request: Request, who: Pusher, pool: DbPool) -> PushResult:
    """dataReport (`serviceData` or transparent `APPdata`), eventReport and
    deviceOnlineOfflineReport from CTWing (AEP), for devices in the token's area."""
    raw = await request.body()
    # A connection of its own, taken once the body is read and checked (not `Conn`).
    async with pool.connection() as conn:
        try:
            push = ctwing.CtwingPush.model_validate_json(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            detail = f"{'.'.join(map(str, first['loc'])) or 'body'}: {first['msg']}"
            await reject(conn, "ctwing", raw, Reason.SCHEMA, detail, area=who.area_prefix)
            raise PushRejected(Reason.SCHEMA.value, detail) from None
        device, decoder = await resolve_device(
            conn, [push.device_id], tag=ctwing.PLATFORM_TAG, scope=who.area_prefix, imei=push.imei
        )
        if device is None:
            detail = f"no device for CTWing deviceId {push.device_id}"
            await reject(conn, "ctwing", raw, Reason.UNKNOWN_DEVICE, detail, area=who.area_prefix)
            raise PushRejected(Reason.UNKNOWN_DEVICE.value, detail)
        try:
            uplinks = ctwing.to_uplinks(push, decoder)
        except ValueError as exc:
            await reject(
                conn, "ctwing", raw, Reason.SCHEMA, str(exc), area=device.area, device=device
            )
            raise PushRejected(Reason.SCHEMA.value, str(exc)) from None
        result = await deliver(conn, _pipeline(request), device, uplinks)
    return _answer(result)


@router.get(
    "/onenet",
    response_class=PlainTextResponse,
    responses=refusals(_BAD_SIGNATURE, (NotFound, "SB_ONENET_TOKEN is not set")),
)
@public_route("OneNET's URL check carries no token: it is signed with SB_ONENET_TOKEN")
async def onenet_verify(
    request: Request,
    msg: Annotated[str, Query(max_length=200)],
    nonce: Annotated[str, Query(max_length=64)],
    signature: Annotated[str, Query(max_length=128)],
) -> str:
    """OneNET's URL check: echo `msg` when the signature matches the configured token."""
    token = _onenet_token(request)
    if not onenet.verify(token, nonce, msg, signature):
        raise Forbidden("signature does not match SB_ONENET_TOKEN")
    return msg


@router.post(
    "/onenet",
    responses=refusals(*_PUSH_ERRORS, _BAD_SIGNATURE, (NotFound, "SB_ONENET_TOKEN is not set")),
)
async def onenet_push(request: Request, who: Pusher, pool: DbPool) -> PushResult:
    """Legacy data points (type 1) and online/offline (type 2), or OneNET Studio `notify`
    (property, event) and `lifeCycle` messages, signed with the OneNET token."""
    token = _onenet_token(request)
    raw = await request.body()
    # A connection of its own, taken once the body is read and checked (not `Conn`).
    async with pool.connection() as conn:
        try:
            msg, nonce, given = onenet.envelope(raw)
        except ValueError as exc:
            await reject(conn, "onenet", raw, Reason.SCHEMA, str(exc), area=who.area_prefix)
            raise PushRejected(Reason.SCHEMA.value, str(exc)) from None
        if not onenet.verify(token, nonce, onenet.message_text(msg), given):
            raise Forbidden("msg_signature does not match SB_ONENET_TOKEN")
        try:
            reports = onenet.by_source(onenet.parse(msg))
        except (ValueError, TypeError) as exc:
            await reject(conn, "onenet", raw, Reason.SCHEMA, str(exc), area=who.area_prefix)
            raise PushRejected(Reason.SCHEMA.value, str(exc)) from None
        totals = BatchResult()
        for source, items in reports.items():
            device, decoder = await resolve_device(
                conn, source.ids, tag=onenet.PLATFORM_TAG, scope=who.area_prefix, imei=source.imei
            )
            if device is None:
                detail = f"no device for OneNET device {source.ids[0]}"
                await reject(
                    conn, "onenet", raw, Reason.UNKNOWN_DEVICE, detail, area=who.area_prefix
                )
                totals.rejected[Reason.UNKNOWN_DEVICE.value] += 1
                continue
            uplinks, errors = onenet.to_uplinks(items, decoder)
            for error in errors:  # each report that cannot be read; the others still land
                await reject(
                    conn, "onenet", raw, Reason.SCHEMA, error, area=device.area, device=device
                )
                totals.rejected[Reason.SCHEMA.value] += 1
            if not uplinks:
                continue
            result = await deliver(conn, _pipeline(request), device, uplinks)
            totals.accepted += result.accepted
            totals.rejected.update(result.rejected)
    return _answer(totals)


def _onenet_token(request: Request) -> str:
    token = request.app.state.settings.onenet_token
    if token is None:
        raise NotFound("OneNET push is not configured (set SB_ONENET_TOKEN)")
    return str(token.get_secret_value())
