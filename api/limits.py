"""Limits on what a request may carry, enforced before a handler reads it: body size, JSON
nesting, control characters in the path and query, a JSON body that says it is JSON."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence

from fastapi import params
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.json_depth import TooDeep, check_nesting


class BodyTooLarge(HTTPException):
    """Raised from `receive` mid-body; an HTTPException so FastAPI's body parser passes it on."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=f"body exceeds {limit} bytes")


class BodyLimitMiddleware:
    """Refuse bodies over `limit` bytes (`large_limit` on `large_paths`) with a JSON 413."""

    def __init__(
        self, app: ASGIApp, *, limit: int, large_limit: int, large_paths: tuple[str, ...]
    ) -> None:
        self.app = app
        self.limit = limit
        self.large_limit = large_limit
        self.large_paths = large_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        limit = self.large_limit if path.endswith(self.large_paths) else self.limit
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _reject(send, limit)
            return

        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await _reject(send, limit)


async def _reject(send: Send, limit: int) -> None:
    body = json.dumps(
        {
            "error": {
                "code": "payload_too_large",
                "message": f"body exceeds {limit} bytes",
                "fields": [{"field": "body", "message": f"body exceeds {limit} bytes"}],
            }
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


MAX_JSON_DEPTH = 64
_JSON_TYPES = ("application/json", "application/merge-patch+json")
# Percent-encoded control characters (NUL above all: PostgreSQL refuses it in text).
_CONTROL = re.compile(rb"%(?:0[0-9a-fA-F]|1[0-9a-fA-F]|7[fF])|[\x00-\x1f\x7f]")


class InputGuardMiddleware:
    """Refuse what no handler should see, before one does: control characters in the path
    or query (a NUL would reach the database), and JSON nested deeper than MAX_JSON_DEPTH
    (Python's parser recurses once per level). Both are 422s naming what was wrong."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        query: bytes = scope.get("query_string", b"")
        if _CONTROL.search(raw_path) or _CONTROL.search(query):
            await _refuse(
                send,
                scope,
                "control characters (such as %00) are not accepted in the path or query",
                "query",
            )
            return
        content_type = dict(scope.get("headers", [])).get(b"content-type", b"").decode("latin-1")
        if scope["type"] != "http" or content_type.split(";")[0].strip() not in _JSON_TYPES:
            await self.app(scope, receive, send)
            return
        body, messages = await _read_body(receive)
        try:
            check_nesting(body, MAX_JSON_DEPTH)
        except TooDeep as exc:
            await _refuse(send, scope, f"body: {exc}", "body")
            return
        replay = iter(messages)

        async def replaying() -> Message:
            return next(replay, None) or await receive()

        await self.app(scope, replaying, send)


async def _read_body(receive: Receive) -> tuple[bytes, list[Message]]:
    """The whole request body (already bounded by BodyLimitMiddleware), and the messages
    it came in, to hand on unchanged."""
    messages: list[Message] = []
    chunks: list[bytes] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks), messages


class JsonBodyMiddleware:
    """415 for a request to an operation that takes a JSON body when the request carries a
    body and does not say it is JSON (no Content-Type, or another one). Which operations take
    JSON is read from the routes' own declarations (a body parameter that is not a form or a
    file); those that read the body themselves (YAML rules, CSV imports, carrier pushes) check
    their own."""

    def __init__(self, app: ASGIApp, *, routes: Callable[[], Sequence[BaseRoute]]) -> None:
        self.app = app
        self.routes = routes
        self._json_operations: list[tuple[str, re.Pattern[str]]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("POST", "PUT", "PATCH"):
            headers = dict(scope.get("headers", []))
            content_type = headers.get(b"content-type", b"").decode("latin-1")
            has_body = headers.get(b"content-length", b"0") != b"0" or (
                b"transfer-encoding" in headers
            )
            if has_body and not _is_json(content_type) and self._takes_json(scope):
                given = content_type.split(";")[0].strip() or "none"
                message = f"send this body as application/json, not {given}"
                await _refuse(
                    send, scope, message, "content-type", status=415, code="unsupported_media_type"
                )
                return
        await self.app(scope, receive, send)

    def _takes_json(self, scope: Scope) -> bool:
        if self._json_operations is None:
            self._json_operations = json_operations(self.routes())
        method, path = scope["method"].lower(), scope["path"]
        return any(m == method and pattern.fullmatch(path) for m, pattern in self._json_operations)


def json_operations(routes: Sequence[BaseRoute]) -> list[tuple[str, re.Pattern[str]]]:
    """(method, path pattern) of the routes whose body FastAPI reads as JSON."""
    found = []
    for context in iter_route_contexts(routes):
        route = context.original_route
        if isinstance(route, APIRoute) and context.path and _reads_json(route):
            pattern = compile_path(context.path)[0]
            found += [(method.lower(), pattern) for method in sorted(context.methods or ())]
    return found


def _reads_json(route: APIRoute) -> bool:
    body = route.body_field
    return body is not None and not isinstance(body.field_info, params.Form)


def _is_json(content_type: str) -> bool:
    media = content_type.split(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


async def _refuse(
    send: Send,
    scope: Scope,
    message: str,
    field: str,
    *,
    status: int = 422,
    code: str = "validation_error",
) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008, "reason": message[:120]})
        return
    body = json.dumps(
        {
            "error": {
                "code": code,
                "message": message,
                "field": field,
                "fields": [{"field": field, "message": message}],
            }
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
