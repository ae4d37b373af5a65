"""Who may do what (design §6): the one table of capabilities and the roles that hold each,
the actions each role may take on an incident, and the scope rules that narrow both.

A route says which capability it needs through one dependency, `allowed(capability)`, or
that it takes no token, `@public_route(why)`; nothing else in the API decides by role (a
test keeps it so). Every token is also held to its area prefix (`Principal.covers`, `scope=`
in the stores); field staff and a unit's link are held closer still, to what is theirs
(below).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials

from api.auth import Principal, authenticate, bearer
from api.tokens import Role
from hub.errors import Forbidden, Unauthorized
from incidents.actions import still_to_do, taking_on
from incidents.models import ActionIn, Incident
from incidents.states import Action, next_status

Dependency = Callable[..., Awaitable[Principal]]
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


class Capability(StrEnum):
    READ = "read"
    LIST_INCIDENTS = "list_incidents"
    READ_INCIDENT = "read_incident"
    REPORT_INCIDENT = "report_incident"
    ACT_ON_INCIDENT = "act_on_incident"
    ATTACH_PHOTO = "attach_photo"
    REGISTER = "register"
    READ_DEAD_LETTERS = "read_dead_letters"
    EDIT_ZONES = "edit_zones"
    DRAW_BOUNDARIES = "draw_boundaries"
    MANAGE_UNITS = "manage_units"
    MANAGE_TOKENS = "manage_tokens"
    EDIT_RULES = "edit_rules"
    MANAGE_ROUTES = "manage_routes"
    EDIT_TEMPLATES = "edit_templates"
    MANAGE_CHANNELS = "manage_channels"
    MANAGE_INTAKE_KEYS = "manage_intake_keys"
    MANAGE_UPLINKS = "manage_uplinks"
    KEEP_REGISTERS = "keep_registers"
    READ_EVIDENCE = "read_evidence"
    READ_ID_CARDS = "read_id_cards"
    MANAGE_WATCHLISTS = "manage_watchlists"
    SILENCE = "silence"
    COMMAND_DEVICES = "command_devices"
    PUSH_DEVICE_DATA = "push_device_data"
    HOLD_UNIT_LINK = "hold_unit_link"


ADMIN, INTEGRATOR, OPERATOR = Role.ADMIN, Role.INTEGRATOR, Role.OPERATOR
DISPATCHER, VIEWER, GRID_WORKER, UNIT_LINK = (
    Role.DISPATCHER,
    Role.VIEWER,
    Role.GRID_WORKER,
    Role.UNIT_LINK,
)
# The roles that work at a desk in the centre, each reading all of its area. Field staff and
# a unit's link are let in only where the table says so.
DESK = frozenset({ADMIN, INTEGRATOR, OPERATOR, DISPATCHER, VIEWER})
# The roles that act for one unit, on what is that unit's (the scope rules below).
FIELD = frozenset({GRID_WORKER, UNIT_LINK})

# What a level (a street's, a district's desk) may do on an incident: the whole loop and
# 吹哨报到; a whistle is rated by the unit that got it, not by the level that blew it.
LEVEL_ACTIONS = frozenset(Action) - {Action.RATE_WHISTLE}
# What the unit an incident was dispatched to does on it.
UNIT_ACTIONS = frozenset(
    {
        Action.ACKNOWLEDGE,
        Action.START,
        Action.RESOLVE,
        Action.COMMENT,
        Action.REPORT_IN,
        Action.RATE_WHISTLE,
    }
)
# What a unit that was summoned (not dispatched) does on it: 报到 and its word.
SUMMONED_ACTIONS = frozenset(
    {Action.ACKNOWLEDGE, Action.REPORT_IN, Action.COMMENT, Action.RATE_WHISTLE}
)
# The actions each role may take on an incident, where its state and the scope rules allow.
# Operators comment (say, on a rule's false alarm).
INCIDENT_ACTIONS: Mapping[Role, frozenset[Action]] = {
    ADMIN: LEVEL_ACTIONS,
    DISPATCHER: LEVEL_ACTIONS,
    OPERATOR: frozenset({Action.COMMENT}),
    GRID_WORKER: UNIT_ACTIONS,
    UNIT_LINK: UNIT_ACTIONS,
    INTEGRATOR: frozenset(),
    VIEWER: frozenset(),
}


@dataclass(frozen=True)
class Grant:
    roles: frozenset[Role]
    what: str  # what the capability lets one do, for refusals and docs/design.md


GRANTS: Mapping[Capability, Grant] = {
    Capability.READ: Grant(DESK, "read what is in its area, and follow the live stream"),
    Capability.LIST_INCIDENTS: Grant(DESK | {GRID_WORKER}, "list incidents"),
    Capability.READ_INCIDENT: Grant(DESK | FIELD, "read an incident and its photos"),
    Capability.REPORT_INCIDENT: Grant(
        frozenset({ADMIN, OPERATOR, DISPATCHER, GRID_WORKER}), "report an incident"
    ),
    Capability.ACT_ON_INCIDENT: Grant(
        frozenset(role for role, actions in INCIDENT_ACTIONS.items() if actions),
        "act on incidents",
    ),
    Capability.ATTACH_PHOTO: Grant(
        frozenset({ADMIN, OPERATOR, DISPATCHER}) | FIELD, "add photos to incidents"
    ),
    Capability.REGISTER: Grant(
        frozenset({ADMIN, INTEGRATOR}), "register areas, devices and cameras"
    ),
    Capability.READ_DEAD_LETTERS: Grant(
        frozenset({ADMIN, INTEGRATOR}), "read the device messages that were refused"
    ),
    Capability.EDIT_ZONES: Grant(frozenset({ADMIN, INTEGRATOR, OPERATOR}), "draw a camera's zones"),
    Capability.DRAW_BOUNDARIES: Grant(
        frozenset({ADMIN, INTEGRATOR, OPERATOR}), "draw areas' boundaries and building outlines"
    ),
    Capability.MANAGE_UNITS: Grant(
        frozenset({ADMIN, INTEGRATOR, DISPATCHER}), "register and change units"
    ),
    Capability.MANAGE_TOKENS: Grant(frozenset({ADMIN}), "issue, list and revoke tokens"),
    Capability.EDIT_RULES: Grant(frozenset({ADMIN, OPERATOR}), "write and backtest rules"),
    Capability.MANAGE_ROUTES: Grant(
        frozenset({ADMIN, OPERATOR}), "read and write notification routes"
    ),
    Capability.EDIT_TEMPLATES: Grant(frozenset({ADMIN, OPERATOR}), "change notification templates"),
    Capability.MANAGE_CHANNELS: Grant(
        frozenset({ADMIN, INTEGRATOR}), "read, write and test notification channels"
    ),
    Capability.MANAGE_INTAKE_KEYS: Grant(
        frozenset({ADMIN, INTEGRATOR}), "issue, list and revoke public intake keys"
    ),
    Capability.MANAGE_UPLINKS: Grant(frozenset({ADMIN}), "manage GB/T 28181 uplinks"),
    Capability.KEEP_REGISTERS: Grant(
        frozenset({ADMIN, OPERATOR}), "read and keep communities' resident registers"
    ),
    Capability.READ_EVIDENCE: Grant(
        frozenset({ADMIN, OPERATOR, DISPATCHER}), "see camera pictures (they show people)"
    ),
    Capability.READ_ID_CARDS: Grant(
        frozenset({ADMIN, OPERATOR, DISPATCHER}),
        "see ID-card reads and watch lists (who was read where)",
    ),
    Capability.MANAGE_WATCHLISTS: Grant(
        frozenset({ADMIN, OPERATOR}), "keep watch lists and their entries"
    ),
    Capability.SILENCE: Grant(frozenset({ADMIN, OPERATOR, DISPATCHER}), "silence alarms"),
    Capability.COMMAND_DEVICES: Grant(frozenset({ADMIN, OPERATOR, DISPATCHER}), "command devices"),
    Capability.PUSH_DEVICE_DATA: Grant(
        frozenset({ADMIN, INTEGRATOR}), "push device data (carrier platforms)"
    ),
    Capability.HOLD_UNIT_LINK: Grant(
        frozenset({UNIT_LINK}), "read what a dispatched or summoned unit's link is for"
    ),
}


def may(who: Principal, capability: Capability) -> bool:
    return who.role in GRANTS[capability].roles


def require(who: Principal, capability: Capability) -> Principal:
    """`who`, if its role holds `capability`; 403 otherwise."""
    if not may(who, capability):
        raise Forbidden(f"role {who.role.value} may not {GRANTS[capability].what}")
    return who


def capabilities(role: Role) -> list[Capability]:
    return [c for c in Capability if role in GRANTS[c].roles]


# The dependency each route declares (`allowed`), and routes that declare themselves public
# or authenticated in band; a test reads both to check that every route declares one.
_DECLARED: dict[Callable[..., Any], Capability] = {}
_PUBLIC: dict[Callable[..., Any], str] = {}


@cache
def allowed(capability: Capability) -> Dependency:
    """The dependency of a route that needs `capability`: the bearer token's caller if its role
    holds it; 401 without a good token, 403 for another role."""

    async def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Principal:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
        return require(await authenticate(request, credentials.credentials), capability)

    _DECLARED[dependency] = capability
    return dependency


@cache
def allowed_in_url(capability: Capability) -> Dependency:
    """As `allowed`, for callers that can only be given a URL (carrier platforms): the token
    as `Authorization: Bearer` or as `?token=`."""

    async def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Principal:
        token = credentials.credentials if credentials else request.query_params.get("token")
        if not token:
            raise Unauthorized("missing token (Authorization: Bearer, or ?token= in the push URL)")
        return require(await authenticate(request, token), capability)

    _DECLARED[dependency] = capability
    return dependency


def in_band(capability: Capability) -> Callable[[Endpoint], Endpoint]:
    """Declares a route that authenticates inside (a browser's WebSocket cannot send headers)
    and then calls `require(principal, capability)` itself."""

    def declare(endpoint: Endpoint) -> Endpoint:
        _DECLARED[endpoint] = capability
        return endpoint

    return declare


def public_route(why: str) -> Callable[[Endpoint], Endpoint]:
    """Declares a route that takes no token; `why` says what guards it instead, if anything."""

    def declare(endpoint: Endpoint) -> Endpoint:
        _PUBLIC[endpoint] = why
        return endpoint

    return declare


def declared_capability(call: Callable[..., Any]) -> Capability | None:
    """The capability a dependency (`allowed`) or an endpoint (`in_band`) declares."""
    return _DECLARED.get(call)


def declared_public(endpoint: Callable[..., Any]) -> str | None:
    return _PUBLIC.get(endpoint)


# Scope rules: field staff see what they reported and what was dispatched or summoned to their
# unit; a unit's link reaches its one incident.


def reaches(who: Principal, incident_id: int) -> bool:
    """A unit's link is for one incident; other callers reach any (their area permitting)."""
    return who.role is not UNIT_LINK or who.incident_id == incident_id


def sees(who: Principal, incident: Incident) -> bool:
    """Whether the caller sees this incident of its area: field staff see only theirs."""
    return who.role is not GRID_WORKER or _theirs(who, incident)


def own_only(who: Principal) -> tuple[str, str | None] | None:
    """For a list of incidents: the reporter name and unit a grid worker's list is kept to."""
    return (who.name, who.unit_id) if who.role is GRID_WORKER else None


def for_unit(who: Principal) -> bool:
    """Whether the caller acts for one unit (field staff, a unit's link)."""
    return who.role in FIELD


def _theirs(who: Principal, incident: Incident) -> bool:
    return incident.reported_by == who.name or (
        who.unit_id is not None
        and (incident.unit_id == who.unit_id or _summoned(who.unit_id, incident))
    )


def _summoned(unit_id: str | None, incident: Incident) -> bool:
    return any(s.unit_id == unit_id for s in incident.summons)


def own_report(who: Principal, incident: Incident) -> bool:
    """A grid worker's own report that no unit has yet, nor was summoned to: it works what it
    reported, and the steps it lacks are taken on in its name (design §6)."""
    return (
        who.role is GRID_WORKER
        and incident.reported_by == who.name
        and incident.unit_id is None
        and not incident.summons
    )


def _unit_may(who: Principal, incident: Incident) -> frozenset[Action]:
    """What a caller acting for its unit may do on the incident: everything the unit does
    where it was dispatched to it (or reported it, unworked), 报到 and its word where it was
    summoned; a grid worker comments on whatever it sees."""
    dispatched = who.unit_id is not None and incident.unit_id == who.unit_id
    if dispatched or own_report(who, incident):
        mine = UNIT_ACTIONS
    elif _summoned(who.unit_id, incident):
        mine = SUMMONED_ACTIONS
    else:
        mine = frozenset()
    return mine | {Action.COMMENT} if who.role is GRID_WORKER else mine


def check_action(who: Principal, action: Action) -> None:
    """403 for an action the caller's role never takes (before the incident is looked up)."""
    if action in INCIDENT_ACTIONS[who.role]:
        return
    if action is Action.RATE_WHISTLE:
        raise Forbidden("a summoned unit rates its whistle itself (its link or its staff)")
    raise Forbidden(f"role {who.role.value} may not {action.value} an incident")


def as_unit(who: Principal, incident: Incident, body: ActionIn) -> ActionIn:
    """The action as taken for the caller's unit, where it acts for one; 403 where its unit
    may not take it on this incident."""
    if not for_unit(who):
        return body
    if body.unit_id is not None and body.unit_id != who.unit_id:
        raise Forbidden("field staff act for their own unit only")
    if who.role is GRID_WORKER and body.action is Action.COMMENT:
        return body
    if body.action not in _unit_may(who, incident):
        raise Forbidden("only the unit it was dispatched to works an incident")
    return body.model_copy(update={"unit_id": who.unit_id})


def allowed_actions(who: Principal, incident: Incident) -> list[Action]:
    """What the caller may do on the incident now: what its role takes, narrowed by the scope
    rules, that the incident's state allows (after the steps a grid worker's own report is
    taken on by) and that its records leave to do. The API checks each again when it comes."""
    mine = INCIDENT_ACTIONS[who.role]
    if for_unit(who):
        mine = mine & _unit_may(who, incident)
    unit_id = who.unit_id if for_unit(who) else None
    own = own_report(who, incident)
    return [
        action
        for action in Action
        if action in mine
        and _state_allows(incident, action, own)
        and still_to_do(incident, action, unit_id)
    ]


def _state_allows(incident: Incident, action: Action, own: bool) -> bool:
    status = incident.status
    if own and action is not Action.COMMENT:
        steps = taking_on(status, action)
        status = steps[-1][1] if steps else status
    return next_status(status, action) is not None
