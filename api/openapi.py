"""The OpenAPI document, telling the truth about errors.

FastAPI documents a 422 in its own `HTTPValidationError` shape, which this API never sends,
and nothing else. Here every operation gets the errors it can answer, all in the one shape
`Error` (api/errors.py). What a route's declaration already says is read from it: 401, 403
and 429 where a token is needed (its capability leaves some role out, or its area or link
does), 404 where its path names something, 413 where a body is read, 415 where the body must
be JSON, and 422 and 503 everywhere. What only the route knows (a 409 for a duplicate, a 404
for an id in the query, a body of its own type) it declares next to itself, with
`responses=refusals(Conflict, ...)`.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api.errors import ErrorBody
from hub.errors import HubError
from rules.model import Rule

DESCRIPTIONS = {
    401: "missing, unknown, revoked or expired token",
    403: "the token's role or area does not allow it",
    404: "no such object in the caller's area",
    409: "conflicts with what is there (a duplicate, or a state that does not allow it)",
    413: "body larger than the limit",
    415: "body of a type this operation does not take",
    422: "invalid input; `fields` says where",
    429: "too many failed authentications from this client; see Retry-After",
    503: "the database is unavailable; try again (see Retry-After)",
}
# An error a route answers: its kind, or its kind and what it means there.
Refusal = type[HubError] | tuple[type[HubError], str]


def refusals(*kinds: Refusal) -> dict[int | str, dict[str, Any]]:
    """A route's `responses=`: the errors it answers beyond those its declaration implies,
    each described in its own words or the usual ones (the document gives each the one error
    shape)."""
    found: dict[int | str, dict[str, Any]] = {}
    for kind in kinds:
        error, description = kind if isinstance(kind, tuple) else (kind, None)
        found[error.status] = {"description": description or DESCRIPTIONS[error.status]}
    return found


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
                license_info=app.license_info,
            )
            _rewrite_errors(schema)
            _rule_schema(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _rewrite_errors(schema: dict[str, Any]) -> None:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    body = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in body.pop("$defs", {}).items():
        components[name] = definition
    components["Error"] = body
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            responses = operation.setdefault("responses", {})
            declared = {int(code) for code in responses if code.isdigit() and int(code) >= 400}
            for code in sorted(_implied(path, method, operation) | declared):
                responses[str(code)] = {
                    "description": responses.get(str(code), {}).get("description")
                    or DESCRIPTIONS[code],
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                }
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)


def _implied(path: str, method: str, operation: dict[str, Any]) -> set[int]:
    """The errors an operation's declaration implies: its token, its path, its body."""
    codes = {422, 503}
    if operation.get("security"):
        codes |= {401, 403, 429}
    if "{" in path:
        codes.add(404)
    if method in ("post", "put", "patch"):
        codes.add(413)
    if "requestBody" in operation:
        codes.add(415)
    return codes


def _rule_schema(schema: dict[str, Any]) -> None:
    """The rule document's own schema, which the rule routes' bodies refer to (they read raw
    JSON or YAML, so FastAPI does not see it: api/routers/rules.py's RULE_BODY)."""
    components = schema["components"]["schemas"]
    rule = Rule.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
    for name, definition in rule.pop("$defs", {}).items():
        components.setdefault(name, definition)
    components["Rule"] = rule
