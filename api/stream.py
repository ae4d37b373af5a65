"""WebSocket /api/v1/stream: live incident and device events, scoped to the caller's area.

One LISTEN connection per API process receives every event any process announced
(`hub.events`); incident events are sent with the incident as it is now.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from api.auth import Principal, authenticate
from api.permissions import Capability, in_band, require
from api.tokens import TOKENS_CHANNEL, live_token_ids
from hub.db import Pool
from hub.errors import HubError
from hub.events import EVENTS_CHANNEL
from hub.listen import wakeups
from hub.logs import get_logger
from hub.supervisor import Probe
from incidents.store import get_incident

log = get_logger(__name__)
router = APIRouter()
QUEUE_LIMIT = 1000  # a client this far behind is disconnected rather than slowing the others
AUTH_WAIT_S = 10.0  # for a browser's first message, which carries its token
TOKEN_CHECK_S = 30.0  # how often open streams' tokens are checked for expiry


@dataclass(eq=False)
class _Client:
    principal: Principal
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=lambda: asyncio.Queue(QUEUE_LIMIT))


class Broadcaster:
    """Fans events from PostgreSQL out to this process's WebSocket clients."""

    def __init__(self, database_url: str, pool: Pool) -> None:
        self.database_url = database_url
        self.pool = pool
        self.clients: set[_Client] = set()
        self.listening = asyncio.Event()

    async def run(self, probe: Probe) -> None:
        first = True
        checked = time.monotonic()
        channels = [EVENTS_CHANNEL, TOKENS_CHANNEL]
        async for wake in wakeups(self.database_url, channels, idle=TOKEN_CHECK_S, probe=probe):
            if wake.reconnected:
                self.listening.set()
                if not first:
                    # Events announced while the connection was down are lost: tell the
                    # clients, which fetch what they show again.
                    await self._fan_out({"type": "stream.gap", "area": ""})
                first = False
            for channel, payload in wake.notes:
                if channel == TOKENS_CHANNEL:
                    self._end_streams_of({int(payload)})
                else:
                    await self._fan_out(json.loads(payload))
            if time.monotonic() - checked >= TOKEN_CHECK_S:
                await self._end_dead_tokens()
                checked = time.monotonic()

    async def _end_dead_tokens(self) -> None:
        """Close the streams of tokens that expired (or were revoked unheard)."""
        ids = {c.principal.token_id for c in self.clients if c.principal.token_id is not None}
        if not ids:
            return
        async with self.pool.connection() as conn:
            live = await live_token_ids(conn, list(ids))
        self._end_streams_of(ids - live)

    def _end_streams_of(self, token_ids: set[int]) -> None:
        for client in [c for c in self.clients if c.principal.token_id in token_ids]:
            self.clients.discard(client)
            while not client.queue.empty():
                client.queue.get_nowait()
            client.queue.put_nowait({"type": "stream.revoked"})

    async def _fan_out(self, event: dict[str, Any]) -> None:
        if not self.clients:
            return
        if str(event.get("type", "")).startswith("incident."):
            async with self.pool.connection() as conn:
                with contextlib.suppress(HubError):
                    incident = await get_incident(conn, int(event["id"]), scope="")
                    event = {**event, "incident": incident.model_dump(mode="json")}
        area = str(event.get("area", ""))
        for client in list(self.clients):
            if not client.principal.covers(area):
                continue
            try:
                client.queue.put_nowait(event)
            except asyncio.QueueFull:
                # Too far behind: drop what is queued, say so, and let the sender close.
                self.clients.discard(client)
                while not client.queue.empty():
                    client.queue.get_nowait()
                client.queue.put_nowait({"type": "stream.overflow"})


_WHO = Capability.READ  # the desk roles; not a unit's link, nor field staff


@router.websocket("/api/v1/stream")
@in_band(_WHO)
async def stream(websocket: WebSocket) -> None:
    """Events `incident.created`, `incident.updated`, `incident.escalated`,
    `incident.summon_overdue`, `incident.rating_due`, `device.offline`, `device.online` for
    the caller's area. Token as `?token=`, `Authorization: Bearer`, or
    (browsers, which keep tokens out of URLs) a first message `{"type": "auth", "token": ...}`
    within 10 s."""
    token = websocket.query_params.get("token") or _bearer(websocket.headers.get("authorization"))
    await websocket.accept()
    try:
        token = token or await _first_message_token(websocket)
        if not token:
            raise HubError("missing token")
        principal = require(await authenticate(websocket, token), _WHO)
    except HubError as exc:
        await websocket.close(code=1008, reason=exc.message)
        return
    broadcaster: Broadcaster = websocket.app.state.broadcaster
    client = _Client(principal)
    broadcaster.clients.add(client)
    await websocket.send_json({"type": "stream.ready", "area_prefix": principal.area_prefix})
    sender = asyncio.create_task(_send(websocket, client))
    try:
        while True:  # the client speaks only to close; this notices when it does
            await websocket.receive_text()
    except WebSocketDisconnect:
        pass
    finally:
        broadcaster.clients.discard(client)
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)


async def _send(websocket: WebSocket, client: _Client) -> None:
    while True:
        event = await client.queue.get()
        await websocket.send_json(event)
        if event["type"] == "stream.overflow":
            await websocket.close(code=1013, reason="too slow; reconnect")
            return
        if event["type"] == "stream.revoked":
            await websocket.close(code=1008, reason="token revoked or expired")
            return


async def _first_message_token(websocket: WebSocket) -> str | None:
    try:
        async with asyncio.timeout(AUTH_WAIT_S):
            message = await websocket.receive_json()
    except (TimeoutError, ValueError, KeyError, WebSocketDisconnect):
        return None
    if isinstance(message, dict) and message.get("type") == "auth":
        token = message.get("token")
        return token if isinstance(token, str) else None
    return None


def _bearer(header: str | None) -> str | None:
    if header and header.lower().startswith("bearer "):
        return header[7:].strip()
    return None
