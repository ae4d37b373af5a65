"""The permission table (api/permissions.py) is the one place that says who may do what: every
route declares a capability from it or says it is public, nothing else in the code decides by
role, and the `allowed_actions` an incident is answered with are what the API then allows."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi.routing import APIRoute, APIWebSocketRoute, iter_route_contexts

from api.app import create_app
from api.auth import Principal
from api.permissions import (
    GRANTS,
    INCIDENT_ACTIONS,
    SUMMONED_ACTIONS,
    UNIT_ACTIONS,
    Capability,
    allowed_actions,
    capabilities,
    declared_capability,
    declared_public,
)
from api.tokens import Role
from gb28181.cascade import api as uplinks_api
from hub.settings import Settings
from incidents.models import Incident
from incidents.states import Action
from tests.conftest import ADMIN_TOKEN, REGISTRY_TABLES, issue
from tests.test_registry_api import COMMUNITY, register_area
from tests.test_reports import grid_worker

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = ("hub", "devices", "ingest", "vision", "rules", "incidents", "notify", "api")
PRODUCTION += ("shaobing", "gb28181")
# Where roles are defined and issued (api/tokens.py) and what each may do (api/permissions.py).
TABLE = {"api/permissions.py", "api/tokens.py"}
STREET, DISTRICT = COMMUNITY[:9], COMMUNITY[:6]


def test_each_capability_is_granted_to_known_roles() -> None:
    assert set(GRANTS) == set(Capability)
    for capability, grant in GRANTS.items():
        assert grant.roles, capability
        assert grant.roles <= set(Role), capability
        assert grant.what, capability


def test_the_incident_actions_cover_every_role_and_agree_with_the_capability() -> None:
    assert set(INCIDENT_ACTIONS) == set(Role)
    acting = {role for role, actions in INCIDENT_ACTIONS.items() if actions}
    assert GRANTS[Capability.ACT_ON_INCIDENT].roles == acting
    assert SUMMONED_ACTIONS <= UNIT_ACTIONS
    # A whistle is rated by the unit that got it, never by a level.
    assert all(
        Action.RATE_WHISTLE not in INCIDENT_ACTIONS[r] for r in (Role.ADMIN, Role.DISPATCHER)
    )


def test_a_unit_link_and_field_staff_hold_little() -> None:
    assert capabilities(Role.UNIT_LINK) == [
        Capability.READ_INCIDENT,
        Capability.ACT_ON_INCIDENT,
        Capability.ATTACH_PHOTO,
        Capability.HOLD_UNIT_LINK,
    ]
    assert capabilities(Role.GRID_WORKER) == [
        Capability.LIST_INCIDENTS,
        Capability.READ_INCIDENT,
        Capability.REPORT_INCIDENT,
        Capability.ACT_ON_INCIDENT,
        Capability.ATTACH_PHOTO,
    ]


def _declared(dependant: Any) -> set[Capability]:
    found: set[Capability] = set()
    for sub in dependant.dependencies:
        capability = declared_capability(sub.call) if sub.call else None
        if capability is not None:
            found.add(capability)
        found |= _declared(sub)
    return found


def _routes() -> Iterator[tuple[str, set[Capability], str | None]]:
    """Each route of the app as the hub runs it: its name, the capabilities it declares (through
    its dependencies or in band), and why it is public, if it says so."""
    settings = Settings(database_url="postgresql://nobody@127.0.0.1/none", _env_file=None)  # type: ignore[call-arg]
    app = create_app(settings, routers=[uplinks_api.router])
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if not isinstance(route, APIRoute | APIWebSocketRoute):
            continue
        declared = _declared(route.dependant)
        if (in_band := declared_capability(route.endpoint)) is not None:
            declared.add(in_band)
        name = f"{','.join(sorted(context.methods or {'WEBSOCKET'}))} {context.path}"
        yield name, declared, declared_public(route.endpoint)


def test_each_route_declares_one_capability_or_is_public() -> None:
    used: set[Capability] = set()
    routes = list(_routes())
    assert len(routes) > 100
    for name, declared, public in routes:
        if public is not None:
            assert not declared, f"{name} is public and yet needs {declared}"
        else:
            assert len(declared) == 1, f"{name} declares {declared or 'nothing'}"
        used |= declared
    assert used == set(Capability), f"no route needs {set(Capability) - used}"


def _role_sets_and_checks(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Inline sets of roles (`{Role.ADMIN, ...}`, `frozenset({...})`) and comparisons that
    decide by role (`who.role in ...`, `role is Role.X`)."""

    def is_role(node: ast.AST) -> bool:
        return isinstance(node, ast.Attribute) and (
            node.attr == "role" or (isinstance(node.value, ast.Name) and node.value.id == "Role")
        )

    for node in ast.walk(tree):
        if isinstance(node, ast.Set | ast.List | ast.Tuple) and any(map(is_role, node.elts)):
            yield node.lineno, "a set of roles"
        if isinstance(node, ast.Compare) and any(map(is_role, [node.left, *node.comparators])):
            yield node.lineno, "a check of a role"


def test_nothing_but_the_table_decides_by_role() -> None:
    offenders = []
    for package in PRODUCTION:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = str(path.relative_to(ROOT))
            source = path.read_text(encoding="utf-8")
            if name in TABLE or ("api" not in name and "from api" not in source):
                continue  # only the API and what plugs routers into it speak of roles
            offenders += [
                f"{name}:{line}: {what}" for line, what in _role_sets_and_checks(ast.parse(source))
            ]
    assert offenders == []


def test_the_check_finds_what_it_looks_for() -> None:
    source = "A = frozenset({Role.ADMIN, Role.VIEWER})\nif who.role is Role.ADMIN: pass\n"
    assert sorted(_role_sets_and_checks(ast.parse(source))) == [
        (1, "a set of roles"),
        (2, "a check of a role"),
    ]


def _incident(**fields: Any) -> Incident:
    """An incident as the store gives one: reported, by "someone", with no unit."""
    now = datetime.now(UTC)
    times = ("created_at", "updated_at", "accept_by", "resolve_by", "first_signal_at")
    nothing = ("rule_id", "rule_version", "site", "building", "accepted_at", "closed_at")
    nothing += ("close_reason", "unit_id", "suggested_unit_id", "lat", "lon", "escalated_to")
    base: dict[str, Any] = dict.fromkeys((*times, "last_signal_at"), now)
    base |= dict.fromkeys((*nothing, "rating"))
    base |= {"id": 1, "category": "fire_safety", "priority": "routine", "status": "reported"}
    base |= {"area": COMMUNITY, "title": "t", "signal_count": 0, "evidence": [], "escalations": 0}
    base |= {"source": "report", "reported_by": "someone"}
    return Incident.model_validate(base | fields)


def _who(role: Role, name: str = "me", unit_id: str | None = None) -> Principal:
    return Principal(token_id=1, name=name, role=role, area_prefix="", unit_id=unit_id)


def test_allowed_actions_follow_the_role_and_the_state() -> None:
    reported = _incident()
    assert allowed_actions(_who(Role.DISPATCHER), reported) == ["accept", "close", "comment"]
    assert allowed_actions(_who(Role.OPERATOR), reported) == ["comment"]
    assert allowed_actions(_who(Role.VIEWER), reported) == []
    closed = _incident(status="closed")
    assert allowed_actions(_who(Role.ADMIN), closed) == ["rate", "comment"]
    assert allowed_actions(_who(Role.ADMIN), _incident(status="closed", rating=4)) == ["comment"]
    dispatched = _incident(status="dispatched", unit_id="U-1")
    assert allowed_actions(_who(Role.DISPATCHER), dispatched) == [
        "dispatch",
        "start",
        "close",
        "comment",
        "acknowledge",
        "summon",
    ]
    # Field staff: what is dispatched to their unit, their own report, or only a comment.
    assert allowed_actions(_who(Role.GRID_WORKER, unit_id="U-1"), dispatched) == [
        "start",
        "comment",
        "acknowledge",
    ]
    assert allowed_actions(_who(Role.GRID_WORKER, name="someone"), reported) == [
        "start",
        "resolve",
        "comment",
        "acknowledge",
    ]
    assert allowed_actions(_who(Role.GRID_WORKER, unit_id="U-2"), dispatched) == ["comment"]


# What an action needs beside its name, in the scenarios below.
DEPARTMENT, UNIT = "D-1", "U-1"
ARGS: dict[Action, dict[str, Any]] = {
    Action.COMMENT: {"note": "seen"},
    Action.DISPATCH: {"unit_id": UNIT},
    Action.CLOSE: {"reason": "false_alarm"},
    Action.RATE: {"rating": 4},
    Action.SUMMON: {"unit_ids": [DEPARTMENT]},
    Action.REPORT_IN: {"unit_id": DEPARTMENT},
    Action.RATE_UNIT: {"unit_id": DEPARTMENT, "rating": 4},
    Action.FLAG_UNIT: {"unit_id": DEPARTMENT, "flags": ["repeat"]},
    Action.RATE_WHISTLE: {"rating": 3},
}


# Actions that may come again at once: the others are done (a state left, a rating given).
REPEATABLE = {Action.COMMENT, Action.ACKNOWLEDGE, Action.DISPATCH, Action.SUMMON, Action.FLAG_UNIT}


@dataclass(frozen=True)
class Scenario:
    name: str
    caller: str  # a key of the callers below
    steps: list[Action] = field(default_factory=list)  # the dispatcher's, from `reported`
    reporter: str = "dispatcher"


LOOP = [Action.ACCEPT, Action.DISPATCH, Action.START, Action.RESOLVE, Action.VERIFY]
SUMMONED = [Action.ACCEPT, Action.SUMMON]
SCENARIOS = [
    Scenario("reported", "dispatcher"),
    *(Scenario(f"{n} steps along the loop", "dispatcher", LOOP[:n]) for n in range(1, 6)),
    Scenario("closed", "dispatcher", [Action.CLOSE]),
    Scenario("closed and rated", "dispatcher", [Action.CLOSE, Action.RATE]),
    Scenario("summoned", "dispatcher", SUMMONED),
    Scenario("reported in", "dispatcher", [*SUMMONED, Action.REPORT_IN]),
    Scenario("closed after a summon", "dispatcher", [*SUMMONED, Action.CLOSE]),
    Scenario("an operator's", "operator", [Action.ACCEPT]),
    Scenario("a viewer's", "viewer", [Action.ACCEPT]),
    Scenario("a grid worker's own report", "own", reporter="own"),
    Scenario("dispatched to a grid worker", "worker", LOOP[:2]),
    Scenario("summoned a grid worker's unit", "summoned", SUMMONED),
]


@pytest.fixture(scope="module")
def callers(api_url: str, database_url: str) -> Iterator[dict[str, httpx.Client]]:
    """A dispatcher, an operator and a viewer of the street; grid workers without a unit, of the
    unit incidents are dispatched to, and of the department summoned. Set up once: each
    scenario makes incidents of its own."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {REGISTRY_TABLES} RESTART IDENTITY CASCADE")
    admin = httpx.Client(
        base_url=api_url, timeout=15, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    register_area(admin, DISTRICT, "光明区")
    register_area(admin, STREET, "公明街道")
    register_area(admin, COMMUNITY)
    for id_, kind, area in ((UNIT, "fire", COMMUNITY), (DEPARTMENT, "department", DISTRICT)):
        response = admin.post(
            "/api/v1/units",
            json={
                "id": id_,
                "name": id_,
                "kind": kind,
                "area": area,
                "categories": ["fire_safety"],
            },
        )
        assert response.status_code == 201, response.text
    clients = {
        role: httpx.Client(
            base_url=api_url,
            timeout=15,
            headers={"Authorization": f"Bearer {issue(api_url, role, STREET)}"},
        )
        for role in ("dispatcher", "operator", "viewer")
    }
    clients |= {
        "own": grid_worker(api_url, None),
        "worker": grid_worker(api_url, UNIT),
        "summoned": grid_worker(api_url, DEPARTMENT, DISTRICT),
        "admin": admin,
    }
    yield clients
    for client in clients.values():
        client.close()


def _build(callers: dict[str, httpx.Client], scenario: Scenario) -> int:
    """A fresh incident in the scenario's state."""
    report = {"category": "fire_safety", "title": scenario.name, "area": COMMUNITY}
    created = callers[scenario.reporter].post("/api/v1/incidents", json=report)
    assert created.status_code == 201, created.text
    incident_id: int = created.json()["id"]
    for step in scenario.steps:
        done = callers["dispatcher"].post(
            f"/api/v1/incidents/{incident_id}/actions", json={"action": step, **ARGS.get(step, {})}
        )
        assert done.status_code == 200, (scenario.name, step, done.text)
    return incident_id


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_allowed_actions_are_what_the_api_allows(
    callers: dict[str, httpx.Client], scenario: Scenario
) -> None:
    """Each action the incident says the caller may take succeeds (on a fresh copy); each other
    is refused, whether by role, by scope, by state or by what was done already."""
    caller = callers[scenario.caller]
    incident_id = _build(callers, scenario)
    shown = caller.get(f"/api/v1/incidents/{incident_id}").json()
    allowed = shown["allowed_actions"]
    listed = caller.get("/api/v1/incidents", params={"limit": 500}).json()["items"]
    assert next(i for i in listed if i["id"] == incident_id)["allowed_actions"] == allowed
    for action in Action:
        body = {"action": action, **ARGS.get(action, {})}
        if scenario.caller in ("own", "worker", "summoned"):
            body.pop("unit_id", None)  # field staff act for their own unit
        target = _build(callers, scenario) if action in allowed else incident_id
        response = caller.post(f"/api/v1/incidents/{target}/actions", json=body)
        if action in allowed:
            assert response.status_code == 200, (action, response.text)
            again = response.json()["allowed_actions"]
            assert action in REPEATABLE or action not in again, (action, again)
        else:
            assert response.status_code in (403, 409, 422), (action, response.text)
    after = caller.get(f"/api/v1/incidents/{incident_id}").json()
    assert after["status"] == shown["status"] and after["allowed_actions"] == allowed


def test_me_says_what_the_role_may_do(callers: dict[str, httpx.Client]) -> None:
    me = callers["operator"].get("/api/v1/me").json()
    assert me["capabilities"] == [c.value for c in capabilities(Role.OPERATOR)]
    assert "edit_rules" in me["capabilities"] and "register" not in me["capabilities"]
    assert me["incident_actions"] == ["comment"]
    dispatcher = callers["dispatcher"].get("/api/v1/me").json()
    assert "summon" in dispatcher["incident_actions"]
    assert "rate_whistle" not in dispatcher["incident_actions"]


def test_design_md_shows_the_table() -> None:
    """docs/design.md §6 lists each capability with its roles and what it lets one do."""
    text = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    table = text.split("| capability | roles | lets one |\n|---|---|---|\n", 1)[1].split("\n\n")[0]
    shown = {}
    for row in table.splitlines():
        capability, roles, what = (cell.strip() for cell in row.strip("|").split(" | "))
        shown[capability.strip("`")] = ({r.strip("`") for r in roles.split(", ")}, what)
    assert shown == {c.value: ({r.value for r in g.roles}, g.what) for c, g in GRANTS.items()}


def test_the_console_decides_nothing_by_role() -> None:
    """The console names the role; what it offers comes from `/me` and each incident's
    `allowed_actions`, never from a role of its own reckoning."""
    role = re.compile(r"\.role\b|'(admin|integrator|operator|dispatcher|viewer|grid_worker)'")
    offenders = []
    for path in sorted((ROOT / "web" / "src").rglob("*")):
        name = str(path.relative_to(ROOT))
        if path.suffix not in (".ts", ".vue") or name == "web/src/api/types.ts":
            continue
        if "locales" in path.parts:
            continue  # the roles' names, to show
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if role.search(line.replace("$t(`roles.${session.me.role}`)", "")):
                offenders.append(f"{name}:{number}: {line.strip()}")
    assert offenders == []
