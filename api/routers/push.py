"""/api/v1/push/ctwing and /api/v1/push/onenet: carrier IoT platforms pushing device data."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import ValidationError

from api.auth import Principal, allow_push
from api.deps import DbPool
from hub.errors import Forbidden, HubError, Invalid, NotFound
from hub.secret import hmac_key
from ingest.decode import Reason
from ingest.pipeline import Pipeline
from ingest.push import ctwing, onenet
from ingest.push.receiver import deliver, reject, resolve_device
from ingest.registry_view import RegistryView
from ingest.store import BatchResult

router = APIRouter(prefix="/push", tags=["push"])
Pusher = Annotated[Principal, Depends(allow_push())]


class PushRejected(HubError):
    """A push we kept as a dead letter; 422 so the platform does not retry it as is."""

    status = 422

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.code = reason.value


def _pipeline(request: Request) -> Pipeline:
    # A fresh registry view per request: pushes are rare enough to look devices up each time.
    return Pipeline(RegistryView(), hmac_key(request.app.state.settings))


def _summary(result: BatchResult) -> dict[str, Any]:
    return {"result": "ok", "accepted": result.accepted, "rejected": dict(result.rejected)}


@router.post("/ctwing")
async def ctwing_push(request: Request, who: Pusher, pool: DbPool) -> dict[str, Any]:
    """dataReport, eventReport and deviceOnlineOfflineReport from CTWing (AEP)."""
    raw = await request.body()
    async with pool.connection() as conn:
        try:
            push = ctwing.CtwingPush.model_validate_json(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            detail = f"{'.'.join(map(str, first['loc'])) or 'body'}: {first['msg']}"
            await reject(conn, "ctwing", raw, Reason.SCHEMA, detail)
            raise PushRejected(Reason.SCHEMA, detail) from None
        device, decoder = await resolve_device(
            conn, push.device_id, tag=ctwing.PLATFORM_TAG, imei=push.imei
        )
        if device is None:
            detail = f"no device for CTWing deviceId {push.device_id}"
            await reject(conn, "ctwing", raw, Reason.UNKNOWN_DEVICE, detail)
            raise PushRejected(Reason.UNKNOWN_DEVICE, detail)
        if not who.covers(device.area):
            raise NotFound(f"device {device.id} not found")
        try:
            uplinks = ctwing.to_uplinks(push, decoder)
        except ValueError as exc:
            await reject(conn, "ctwing", raw, Reason.SCHEMA, str(exc))
            raise PushRejected(Reason.SCHEMA, str(exc)) from None
        result = await deliver(conn, _pipeline(request), device, uplinks)
    return _summary(result)


@router.get("/onenet", response_class=PlainTextResponse)
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


@router.post("/onenet")
async def onenet_push(request: Request, who: Pusher, pool: DbPool) -> JSONResponse:
    """Data points (type 1) and online/offline (type 2), signed with the OneNET token."""
    token = _onenet_token(request)
    raw = await request.body()
    try:
        envelope = json.loads(raw)
        msg, nonce, given = envelope["msg"], envelope["nonce"], envelope["msg_signature"]
    except (ValueError, KeyError, TypeError):
        raise Invalid("body is {msg, nonce, msg_signature}", field="body") from None
    if not onenet.verify(token, str(nonce), onenet.message_text(msg), str(given)):
        raise Forbidden("msg_signature does not match SB_ONENET_TOKEN")
    totals = BatchResult()
    async with pool.connection() as conn:
        devices = {}
        for platform_id in onenet.platform_ids(msg):
            device, decoder = await resolve_device(conn, platform_id, tag=onenet.PLATFORM_TAG)
            if device is None or not who.covers(device.area):
                await reject(
                    conn,
                    "onenet",
                    raw,
                    Reason.UNKNOWN_DEVICE,
                    f"no device for dev_id {platform_id}",
                )
                continue
            devices[platform_id] = (device, decoder)
        try:
            by_device = onenet.to_uplinks(msg, {k: v[1] for k, v in devices.items()})
        except (ValueError, KeyError, TypeError) as exc:
            await reject(conn, "onenet", raw, Reason.SCHEMA, str(exc))
            raise PushRejected(Reason.SCHEMA, str(exc)) from None
        for platform_id, uplinks in by_device.items():
            if platform_id in devices:
                result = await deliver(conn, _pipeline(request), devices[platform_id][0], uplinks)
                totals.accepted += result.accepted
                totals.rejected.update(result.rejected)
    return JSONResponse(_summary(totals))


def _onenet_token(request: Request) -> str:
    token = request.app.state.settings.onenet_token
    if token is None:
        raise NotFound("OneNET push is not configured (set SB_ONENET_TOKEN)")
    return str(token.get_secret_value())
