"""Every failure is JSON `{"error": {"code", "message"}}` with the right status."""

from __future__ import annotations

import re
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from hub.errors import HubError, Unauthorized, Unavailable
from hub.logs import get_logger

log = get_logger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
}


class FieldError(BaseModel):
    field: str
    message: str


class ErrorDetail(BaseModel):
    code: str = Field(description="stable, for programs: validation_error, not_found, ...")
    message: str = Field(description="for people")
    field: str | None = Field(default=None, description="the field at fault, when one is")
    fields: list[FieldError] = Field(default_factory=list)


class ErrorBody(BaseModel):
    """Every error this API answers, whatever its status."""

    error: ErrorDetail


def error_body(
    code: str, message: str, *, fields: list[dict[str, str]] | None = None, **extra: Any
) -> dict[str, Any]:
    """The one error shape: `fields` is always a list (empty when no field is at fault)."""
    return {"error": {"code": code, "message": message, "fields": fields or [], **extra}}


def _location(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HubError)
    async def hub_error(request: Request, exc: HubError) -> JSONResponse:
        fields = [{"field": exc.field, "message": exc.message}] if exc.field else []
        extra = {"field": exc.field} if exc.field else {}
        headers = dict(exc.headers)
        if isinstance(exc, Unauthorized):
            headers["WWW-Authenticate"] = "Bearer"
        return JSONResponse(
            error_body(exc.code, exc.message, fields=fields, **extra),
            status_code=exc.status,
            headers=headers,
        )

    @app.exception_handler(psycopg.OperationalError)
    async def database_down(request: Request, exc: psycopg.OperationalError) -> JSONResponse:
        log.warning("database unavailable", path=request.url.path, error=str(exc))
        return JSONResponse(
            error_body(Unavailable.code, "the database is unavailable; try again", fields=[]),
            status_code=Unavailable.status,
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(psycopg.DataError)
    async def data_error(request: Request, exc: psycopg.DataError) -> JSONResponse:
        # A value the database cannot hold (out of range, a NUL byte) that got past the checks.
        log.warning("value refused by the database", path=request.url.path, error=str(exc))
        message = "a value in the request cannot be stored (out of range or not text)"
        return JSONResponse(error_body("validation_error", message, fields=[]), status_code=422)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [
            {
                "field": _location(err["loc"]),
                "message": str(err["msg"]).removeprefix("Value error, "),
            }
            for err in exc.errors()
        ]
        summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields[:5])
        return JSONResponse(
            error_body("validation_error", summary or "invalid request", fields=fields),
            status_code=422,
        )

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        headers = dict(exc.headers or {})
        if exc.status_code == 400:  # a body FastAPI could not parse: one more invalid input
            return JSONResponse(
                error_body(
                    "validation_error",
                    "body could not be read as JSON",
                    fields=[{"field": "body", "message": "not JSON"}],
                ),
                status_code=422,
            )
        if exc.status_code == 405:
            # Starlette names the methods of the one route it matched; say all of the path's.
            headers["Allow"] = ", ".join(_methods_of(app, request.url.path)) or headers.get(
                "Allow", ""
            )
        return JSONResponse(
            error_body(code, message, fields=[]), status_code=exc.status_code, headers=headers
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", path=request.url.path, method=request.method)
        return JSONResponse(
            error_body("internal", "internal error; the server log has the details", fields=[]),
            status_code=500,
        )


def _methods_of(app: FastAPI, path: str) -> list[str]:
    """The methods the OpenAPI document lists for `path` (its literal path if it has one,
    else the templates it matches)."""
    paths = app.openapi().get("paths", {})
    if path in paths:
        return sorted(m.upper() for m in paths[path])
    found: set[str] = set()
    for template, item in paths.items():
        pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path):
            found.update(m.upper() for m in item)
    return sorted(found)
