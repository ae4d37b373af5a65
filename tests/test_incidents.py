"""The incident loop over real HTTP: every legal and illegal transition, audit, SLA, attach."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from hub.contracts import Priority
from hub.db import connect
from incidents.models import Incident, NewIncident
from incidents.opening import open_or_attach
from incidents.sla import Sla
from incidents.states import Action, Status, next_status
from tests.test_registry_api import COMMUNITY, register_area

NOW = datetime(2026, 11, 22, 16, 40, tzinfo=UTC)


def open_incident(database_url: str, *, key: str = "B3", priority: str = "major",
                  rule: str = "smoke-alarm", area: str = COMMUNITY) -> tuple[Incident, bool]:  # fmt: skip
    new = NewIncident(
        rule_id=rule, rule_version=1, group_key=key, category="fire",
        priority=Priority(priority), area=area, site="楼村花园", building=key,
        title=f"Smoke alarm at 楼村花园 {key}", first_signal_at=NOW, last_signal_at=NOW, evidence=[{"signal": "smoke_alarm"}],
    )  # fmt: skip

    async def run() -> tuple[Incident, bool]:
        conn = await connect(database_url)
        async with conn:
            return await open_or_attach(conn, new, now=NOW, sla=Sla())

    return asyncio.run(run())


@pytest.fixture
def world(admin: httpx.Client) -> Iterator[httpx.Client]:
    register_area(admin)
    admin.post("/api/v1/units", json={"id": "U-1", "name": "微型消防站", "kind": "fire",
                                      "area": COMMUNITY, "categories": ["fire"]})  # fmt: skip
    admin.post("/api/v1/units", json={"id": "U-OFF", "name": "休息", "kind": "fire",
                                      "area": COMMUNITY, "on_duty": False})  # fmt: skip
    yield admin


def act(client: httpx.Client, incident_id: int, action: str, **extra: Any) -> httpx.Response:
    return client.post(f"/api/v1/incidents/{incident_id}/actions", json={"action": action, **extra})


# Arguments each action needs to be well formed.
ARGS: dict[str, dict[str, Any]] = {
    "dispatch": {"unit_id": "U-1"},
    "close": {"reason": "false_alarm"},
    "rate": {"rating": 4},
    "comment": {"note": "checked the stairwell"},
    "summon": {"unit_ids": ["U-1"]},
}
# Actions on a summoned unit's 报到 record: their state rules are checked, with a summoned
# unit, in tests/test_whistle.py.
ON_SUMMONS = frozenset({Action.REPORT_IN, Action.RATE_UNIT, Action.FLAG_UNIT, Action.RATE_WHISTLE})
# The path to each state from `reported`.
PATHS: dict[Status, list[str]] = {
    Status.REPORTED: [],
    Status.ACCEPTED: ["accept"],
    Status.DISPATCHED: ["accept", "dispatch"],
    Status.HANDLING: ["accept", "dispatch", "start"],
    Status.RESOLVED: ["accept", "dispatch", "start", "resolve"],
    Status.VERIFIED: ["accept", "dispatch", "start", "resolve", "verify"],
    Status.CLOSED: ["close"],
}


def incident_in(client: httpx.Client, database_url: str, status: Status, key: str) -> int:
    incident, _ = open_incident(database_url, key=key)
    for step in PATHS[status]:
        response = act(client, incident.id, step, **ARGS.get(step, {}))
        assert response.status_code == 200, (step, response.text)
    assert client.get(f"/api/v1/incidents/{incident.id}").json()["status"] == status.value
    return incident.id


def test_the_whole_loop_with_audit_and_rating(world: httpx.Client, database_url: str) -> None:
    incident, created = open_incident(database_url)
    assert created and incident.status is Status.REPORTED
    assert incident.accept_by - incident.created_at == timedelta(minutes=5)  # major
    assert incident.resolve_by - incident.created_at == timedelta(hours=4)
    steps = [("accept", {}), ("dispatch", {"unit_id": "U-1"}), ("start", {}), ("resolve", {}),
             ("reject", {"note": "still smoky"}), ("resolve", {}), ("verify", {}),
             ("close", {}), ("rate", {"rating": 5})]  # fmt: skip
    for action, extra in steps:
        response = act(world, incident.id, action, **extra)
        assert response.status_code == 200, (action, response.text)
    final = response.json()
    assert final["status"] == "closed" and final["close_reason"] == "resolved"
    assert final["rating"] == 5 and final["unit_id"] == "U-1" and final["accepted_at"]
    again = act(world, incident.id, "rate", rating=1)
    assert again.status_code == 409 and "rated already" in again.json()["error"]["message"]
    trail = world.get(f"/api/v1/incidents/{incident.id}/audit").json()
    assert [(t["action"], t["from_status"], t["to_status"]) for t in trail] == [
        ("report", None, "reported"), ("accept", "reported", "accepted"),
        ("dispatch", "accepted", "dispatched"), ("start", "dispatched", "handling"),
        ("resolve", "handling", "resolved"), ("reject", "resolved", "handling"),
        ("resolve", "handling", "resolved"), ("verify", "resolved", "verified"),
        ("close", "verified", "closed"), ("rate", "closed", "closed"),
    ]  # fmt: skip
    assert trail[1]["actor"] == "SB_ADMIN_TOKEN" and trail[5]["note"] == "still smoky"
    assert trail[2]["data"] == {"unit_id": "U-1"}


@pytest.mark.parametrize("status", list(Status))
def test_every_action_in_every_state(
    world: httpx.Client, database_url: str, status: Status
) -> None:
    for action in (a for a in Action if a not in ON_SUMMONS):
        incident_id = incident_in(world, database_url, status, key=f"{status.value}-{action.value}")
        response = act(world, incident_id, action.value, **ARGS.get(action.value, {}))
        legal = next_status(status, action) is not None
        if action is Action.RATE and status is Status.CLOSED:
            legal = True
        expected = 200 if legal else 409
        assert response.status_code == expected, (status, action, response.text)
        if not legal:
            assert response.json()["error"]["code"] == "conflict"
            assert f"cannot {action.value}" in response.json()["error"]["message"]


def test_close_needs_a_reason_except_after_verification(
    world: httpx.Client, database_url: str
) -> None:
    incident_id = incident_in(world, database_url, Status.HANDLING, key="h")
    response = act(world, incident_id, "close")
    assert response.status_code == 422 and response.json()["error"]["field"] == "reason"
    assert (
        act(world, incident_id, "close", reason="duplicate").json()["close_reason"] == "duplicate"
    )


def test_dispatch_checks_the_unit(world: httpx.Client, database_url: str) -> None:
    incident_id = incident_in(world, database_url, Status.ACCEPTED, key="d")
    assert act(world, incident_id, "dispatch", unit_id="U-OFF").status_code == 422
    assert act(world, incident_id, "dispatch", unit_id="U-404").status_code == 422
    assert act(world, incident_id, "dispatch").status_code == 422  # no unit at all
    assert act(world, incident_id, "dispatch", unit_id="U-1").status_code == 200


def test_signals_attach_instead_of_duplicating(world: httpx.Client, database_url: str) -> None:
    first, created = open_incident(database_url)
    second, again = open_incident(database_url)
    assert created and not again and first.id == second.id and second.signal_count == 2
    # A confirmation raises the open incident's priority and tightens its deadlines.
    raised, _ = open_incident(database_url, priority="emergency")
    assert raised.id == first.id and raised.priority is Priority.EMERGENCY
    assert raised.accept_by - raised.created_at == timedelta(minutes=1)
    for _ in range(25):  # later signals count, but the evidence stays at the first twenty
        crowded, _ = open_incident(database_url)
    assert crowded.signal_count == 28 and len(crowded.evidence) == 20
    other, created_other = open_incident(database_url, key="B4")
    assert created_other and other.id != first.id
    act(world, first.id, "close", reason="false_alarm")
    reopened, created_again = open_incident(database_url)
    assert created_again and reopened.id != first.id
    trail = world.get(f"/api/v1/incidents/{first.id}/audit").json()
    assert [t["action"] for t in trail] == [
        "report", "attach", "raise_priority", "attach", *["attach"] * 25, "close",
    ]  # fmt: skip


def test_roles_and_area_scope(world: httpx.Client, database_url: str, client_for: Any) -> None:
    register_area(world, "440311002001", "外街社区")
    inside, _ = open_incident(database_url)
    outside, _ = open_incident(database_url, key="X", area="440311002001")
    dispatcher = client_for("dispatcher", "440311001")
    assert act(dispatcher, inside.id, "accept").status_code == 200
    assert act(dispatcher, outside.id, "accept").status_code == 404
    assert dispatcher.get(f"/api/v1/incidents/{outside.id}").status_code == 404
    listed = dispatcher.get("/api/v1/incidents").json()["items"]
    assert [i["id"] for i in listed] == [inside.id]
    operator = client_for("operator", "")
    assert act(operator, inside.id, "comment", note="rule too sensitive").status_code == 200
    assert act(operator, inside.id, "dispatch", unit_id="U-1").status_code == 403
    assert act(client_for("viewer", ""), inside.id, "comment", note="x").status_code == 403
    assert act(client_for("integrator", ""), inside.id, "accept").status_code == 403


def test_listing_filters_and_pages(world: httpx.Client, database_url: str) -> None:
    ids = [open_incident(database_url, key=f"K{i}", priority="routine" if i % 2 else "major")[0].id
           for i in range(5)]  # fmt: skip
    act(world, ids[0], "accept")
    page = world.get("/api/v1/incidents", params={"limit": 2}).json()
    assert [i["id"] for i in page["items"]] == ids[::-1][:2] and page["next"]
    rest = world.get("/api/v1/incidents", params={"limit": 10, "cursor": page["next"]}).json()
    assert [i["id"] for i in rest["items"]] == ids[::-1][2:] and rest["next"] is None
    routine = world.get("/api/v1/incidents", params={"priority": "routine"}).json()["items"]
    assert {i["id"] for i in routine} == {ids[1], ids[3]}
    accepted = world.get("/api/v1/incidents", params={"status": "accepted"}).json()["items"]
    assert [i["id"] for i in accepted] == [ids[0]]
    bad = world.get("/api/v1/incidents", params={"status": "lost"})
    assert bad.status_code == 422


def test_changes_are_announced_for_the_live_stream(world: httpx.Client, database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as listener:
        listener.execute("LISTEN sb_events")
        incident, _ = open_incident(database_url)
        act(world, incident.id, "accept")
        events = [json.loads(n.payload) for n in listener.notifies(timeout=2, stop_after=2)]
    assert [(e["type"], e["status"]) for e in events] == [
        ("incident.created", "reported"), ("incident.updated", "accepted"),
    ]  # fmt: skip
    assert events[0]["area"] == COMMUNITY and events[0]["id"] == incident.id
