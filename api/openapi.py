"""The OpenAPI document, telling the truth about errors.

FastAPI documents a 422 in its own `HTTPValidationError` shape, which this API never sends,
and nothing else. Here every operation gets the errors it can answer, all in the one shape
`Error` (api/errors.py): 401 and 429 where a token is needed, 403 where the role or area is
checked, 404 where a path names something, 409 where a conflict is possible, 413 where a body
is read, 415 where a body must be of a type, 422 everywhere (validation, the input guards),
503 when the database is away.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api.errors import ErrorBody
from rules.model import Rule

# Operations that can answer 409 (a duplicate, a state that does not allow the action, ...).
CONFLICTS = {
    ("post", "/api/v1/areas"),
    ("delete", "/api/v1/areas/{code}"),
    ("post", "/api/v1/devices"),
    ("patch", "/api/v1/devices/{device_id}"),
    ("post", "/api/v1/cameras"),
    ("post", "/api/v1/units"),
    ("post", "/api/v1/watchlists"),
    ("post", "/api/v1/rules"),
    ("delete", "/api/v1/rules/{rule_id}"),
    ("post", "/api/v1/incidents/{incident_id}/actions"),
    ("post", "/api/v1/channels"),
    ("post", "/api/v1/routes"),
    ("post", "/api/v1/incidents/{incident_id}/silence-sensors"),
    ("post", "/api/v1/public/reports/{receipt}/rating"),
    ("post", "/api/v1/registers"),
}
# Operations without a path parameter that can still answer 404.
NOT_FOUND = {
    ("get", "/api/v1/evidence"),
    ("post", "/api/v1/push/onenet"),
    ("get", "/api/v1/push/onenet"),
}
# Reads that only some roles may make (403 for the others): pictures, ID-card reads, tokens.
RESTRICTED_READS = {
    ("get", "/api/v1/evidence"),
    ("get", "/api/v1/evidence/{evidence_id}"),
    ("get", "/api/v1/watchlists"),
    ("get", "/api/v1/watchlists/{list_id}/entries"),
    ("get", "/api/v1/id-reads"),
    ("get", "/api/v1/tokens"),
    ("get", "/api/v1/dead-letters"),
    ("get", "/api/v1/channels"),
    ("get", "/api/v1/channels/{channel_id}"),
    ("get", "/api/v1/routes"),
    ("get", "/api/v1/routes/{route_id}"),
    ("get", "/api/v1/unit-link"),
    ("get", "/api/v1/incidents/{incident_id}"),
    ("get", "/api/v1/incidents/{incident_id}/attachments"),
    ("get", "/api/v1/incidents/{incident_id}/attachments/{attachment_id}"),
    ("get", "/api/v1/registers"),
    ("get", "/api/v1/registers/{area}"),
    ("get", "/api/v1/registers/{area}/residents"),
}
# Operations that read a body in a type of their own choosing (415 for another).
TYPED_BODIES = {
    ("post", "/api/v1/rules"),
    ("put", "/api/v1/rules/{rule_id}"),
    ("post", "/api/v1/devices/import"),
    ("post", "/api/v1/cameras/import"),
    ("post", "/api/v1/registers/{area}/import"),
}
_DESCRIPTIONS = {
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
            codes = {422, 503}
            if operation.get("security"):
                codes |= {401, 429}
                if method != "get" or (method, path) in RESTRICTED_READS:
                    codes.add(403)
            if "{" in path or (method, path) in NOT_FOUND:
                codes.add(404)
            if (method, path) in CONFLICTS:
                codes.add(409)
            if method in ("post", "put", "patch"):
                codes.add(413)
            if (method, path) in TYPED_BODIES or "requestBody" in operation:
                codes.add(415)
            responses = operation.setdefault("responses", {})
            for code in sorted(codes):
                responses[str(code)] = {
                    "description": responses.get(str(code), {}).get("description")
                    or _DESCRIPTIONS[code],
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                }
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)


def _rule_schema(schema: dict[str, Any]) -> None:
    """The rule document's own schema for the bodies that take one (read from raw JSON or
    YAML, so FastAPI does not see it)."""
    components = schema["components"]["schemas"]
    rule = Rule.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
    for name, definition in rule.pop("$defs", {}).items():
        components.setdefault(name, definition)
    components["Rule"] = rule
    for path, method in (("/api/v1/rules", "post"), ("/api/v1/rules/{rule_id}", "put")):
        operation = schema["paths"].get(path, {}).get(method)
        if operation:
            operation["requestBody"] = {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Rule"}},
                    "application/yaml": {"schema": {"type": "string"}},
                },
            }
