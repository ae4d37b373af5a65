"""/api/v1/rules: detection rules, versioned on every change (JSON or YAML bodies)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.auth import Principal
from api.deps import Conn, Cursor, DbPool, Limit, Reader
from api.openapi import refusals
from api.permissions import Capability, allowed
from hub.durations import parse_duration
from hub.errors import Conflict, Invalid, UnsupportedMediaType
from hub.paging import Page
from hub.times import Moment
from incidents.stats import RuleStats, rule_stats
from rules import documents, store
from rules.backtest import Backtest, backtest, stored_history
from rules.model import Rule

router = APIRouter(prefix="/rules", tags=["rules"])
RuleWriter = Annotated[Principal, Depends(allowed(Capability.EDIT_RULES))]
_YAML = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")


# A rule's body is read by hand (`_rule_from`), as JSON or YAML: the document is told so.
RULE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Rule"}},
            "application/yaml": {"schema": {"type": "string"}},
        },
    }
}


class EnabledIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool


@router.post("", status_code=201, responses=refusals(Conflict), openapi_extra=RULE_BODY)
async def create_rule(request: Request, who: RuleWriter, pool: DbPool) -> store.StoredRule:
    """Create a rule from a JSON or YAML document (design §4)."""
    rule = await _rule_from(request)
    who.require_area(rule.area_prefix)
    # A connection of its own, taken once the body is read and checked (not `Conn`).
    async with pool.connection() as conn:
        return await store.create_rule(conn, rule, by=who.name)


@router.get("")
async def list_rules(
    who: Reader,
    conn: Conn,
    enabled: bool | None = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Page[store.StoredRule]:
    """Rules by id; `next` is the cursor of the following page."""
    return await store.page_rules(
        conn, scope=who.area_prefix, enabled=enabled, limit=limit, cursor=cursor
    )


@router.get("/{rule_id}")
async def get_rule(rule_id: str, who: Reader, conn: Conn) -> store.StoredRule:
    return await store.get_rule(conn, rule_id, scope=who.area_prefix)


@router.put("/{rule_id}", openapi_extra=RULE_BODY)
async def replace_rule(
    rule_id: str, request: Request, who: RuleWriter, pool: DbPool
) -> store.StoredRule:
    """Store a new version of the rule."""
    rule = await _rule_from(request)
    if rule.id != rule_id:
        raise Invalid(f"the document's id {rule.id!r} is not {rule_id!r}", field="body.id")
    who.require_area(rule.area_prefix)
    # A connection of its own, taken once the body is read and checked (not `Conn`).
    async with pool.connection() as conn:
        current = await store.get_rule(conn, rule_id, scope=who.area_prefix)
        who.require_area(Rule.model_validate(current.document).area_prefix)
        return await store.replace_rule(conn, rule, by=who.name, scope=who.area_prefix)


@router.patch("/{rule_id}")
async def enable_rule(
    rule_id: str, body: EnabledIn, who: RuleWriter, conn: Conn
) -> store.StoredRule:
    """Enable or disable a rule (a new version like any other change)."""
    current = await store.get_rule(conn, rule_id, scope=who.area_prefix)
    rule = Rule.model_validate({**current.document, "enabled": body.enabled})
    who.require_area(rule.area_prefix)
    return await store.replace_rule(conn, rule, by=who.name, scope=who.area_prefix)


@router.delete("/{rule_id}", status_code=204, responses=refusals(Conflict))
async def delete_rule(rule_id: str, who: RuleWriter, conn: Conn) -> Response:
    current = await store.get_rule(conn, rule_id, scope=who.area_prefix)
    who.require_area(Rule.model_validate(current.document).area_prefix)
    await store.delete_rule(conn, rule_id, scope=who.area_prefix)
    return Response(status_code=204)


class BacktestIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    start: Moment = Field(alias="from")
    end: Moment = Field(alias="to")
    rule: dict[str, Any] | None = None


@router.post("/{rule_id}/backtest")
async def backtest_rule(
    rule_id: str, body: BacktestIn, request: Request, who: RuleWriter, pool: DbPool
) -> Backtest:
    """Replay the signals received in [from, to) through the engine with the stored rule, or
    a draft of it (`rule`): with the clock, the silences and the closes of the rule's
    incidents as live evaluation saw them. Says what it would have raised, per day."""
    if body.end <= body.start or body.end - body.start > timedelta(days=31):
        raise Invalid("from must precede to, at most 31 days apart", field="to")
    if body.rule is not None:
        try:
            documents.check_structure(body.rule)
        except documents.DocumentError as exc:
            raise Invalid(str(exc), field="body.rule") from None
    # Its own connection, handed back before the replay (CPU work, however long it takes).
    async with pool.connection() as conn:
        stored = await store.get_rule(conn, rule_id, scope=who.area_prefix)
        try:
            rule = Rule.model_validate({**(body.rule or stored.document), "id": rule_id})
        except ValidationError as exc:
            raise RequestValidationError(
                [{**err, "loc": ("body", "rule", *err["loc"])} for err in exc.errors()]
            ) from None
        signals, closes, silences = await stored_history(
            conn, rule_id, body.start, body.end, scope=who.area_prefix
        )
    lateness = parse_duration(request.app.state.settings.rules_lateness)
    return backtest(
        rule, signals, closes=closes, silences=silences, until=body.end, lateness=lateness
    )


@router.get("/{rule_id}/stats")
async def stats_of_rule(
    rule_id: str,
    who: Reader,
    conn: Conn,
    start: Annotated[Moment, Query(alias="from")],
    end: Annotated[Moment, Query(alias="to")],
) -> RuleStats:
    """Incidents the rule opened, signals attached, closed as false alarm → precision."""
    await store.get_rule(conn, rule_id, scope=who.area_prefix)
    return await rule_stats(conn, rule_id, scope=who.area_prefix, start=start, end=end)


@router.get("/{rule_id}/versions")
async def rule_versions(rule_id: str, who: Reader, conn: Conn) -> list[store.RuleVersion]:
    return await store.versions(conn, rule_id, scope=who.area_prefix)


async def _rule_from(request: Request) -> Rule:
    raw = await request.body()
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in (*_YAML, "application/json"):
        raise UnsupportedMediaType(
            f"send a rule as application/json or application/yaml, not {content_type or 'none'}"
        )
    try:
        document: Any = documents.parse(raw, yaml_text=content_type in _YAML)
    except documents.DocumentError as exc:
        raise Invalid(str(exc), field="body") from None
    try:
        return Rule.model_validate(document)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**err, "loc": ("body", *err["loc"])} for err in exc.errors()]
        ) from None
