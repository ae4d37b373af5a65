"""SLA escalation up the area hierarchy, and `dispatch: nearest`, with a controllable clock."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import httpx
import psycopg

from hub.contracts import Priority
from hub.db import connect
from hub.supervisor import Probe
from incidents.escalation import Escalation, escalate_overdue
from incidents.models import NewIncident
from incidents.opening import open_or_attach
from incidents.sla import Sla
from incidents.timers import TimersConfig, run_timers
from tests.eventually import eventually
from tests.test_incidents import NOW, act, open_incident
from tests.test_registry_api import COMMUNITY, register_area
from tests.threads import in_background


def tick(database_url: str, minutes: float) -> list[Escalation]:
    async def run() -> list[Escalation]:
        conn = await connect(database_url)
        async with conn, conn.transaction():
            return await escalate_overdue(conn, NOW + timedelta(minutes=minutes), Sla())

    return asyncio.run(run())


def test_unaccepted_incident_climbs_to_the_city_and_stops(
    admin: httpx.Client, database_url: str
) -> None:
    register_area(admin)
    incident, _ = open_incident(database_url, priority="emergency")  # accept within 1 minute
    with psycopg.connect(database_url, autocommit=True) as listener:
        listener.execute("LISTEN sb_events")
        assert tick(database_url, 0.5) == []
        first = tick(database_url, 1.5)
        assert first == [Escalation(incident.id, "440311001", "accept_overdue")]
        assert tick(database_url, 2.0) == []  # the street has its own minute now
        assert [e.to_area for e in tick(database_url, 2.6)] == ["440311"]
        assert [e.to_area for e in tick(database_url, 3.7)] == ["4403"]
        assert tick(database_url, 4.8) == []  # nowhere above the city
        events = [json.loads(n.payload) for n in listener.notifies(timeout=1, stop_after=3)]
    assert [(e["type"], e["escalated_to"]) for e in events] == [
        ("incident.escalated", "440311001"),
        ("incident.escalated", "440311"),
        ("incident.escalated", "4403"),
    ]
    shown = admin.get(f"/api/v1/incidents/{incident.id}").json()
    assert shown["escalated_to"] == "4403" and shown["escalations"] == 3
    trail = admin.get(f"/api/v1/incidents/{incident.id}/audit").json()
    assert [t["data"].get("to") for t in trail if t["action"] == "escalate"] == [
        "440311001",
        "440311",
        "4403",
    ]


def test_accepted_but_unresolved_escalates_on_the_resolve_deadline(
    admin: httpx.Client, database_url: str
) -> None:
    register_area(admin)
    incident, _ = open_incident(database_url, priority="major")  # 5 min / 4 h
    assert act(admin, incident.id, "accept").status_code == 200
    assert tick(database_url, 10) == []  # accepted: the accept deadline no longer counts
    assert tick(database_url, 4 * 60 + 1) == [
        Escalation(incident.id, "440311001", "resolve_overdue")
    ]
    act(admin, incident.id, "close", reason="resolved")
    assert tick(database_url, 9 * 60) == []  # closed incidents never escalate


def test_nearest_on_duty_unit_for_the_category_is_proposed(
    admin: httpx.Client, database_url: str
) -> None:
    register_area(admin)
    units = [
        ("U-FAR", 22.90, 113.99, ["fire"], True),
        ("U-NEAR", 22.781, 113.931, ["fire"], True),
        ("U-NEAREST-OFF", 22.7801, 113.9301, ["fire"], False),
        ("U-NEAR-MEDIC", 22.7802, 113.9302, ["medical"], True),
    ]
    for unit_id, lat, lon, categories, on_duty in units:
        response = admin.post(
            "/api/v1/units",
            json={
                "id": unit_id,
                "name": unit_id,
                "kind": "fire",
                "area": COMMUNITY,
                "lat": lat,
                "lon": lon,
                "categories": categories,
                "on_duty": on_duty,
            },
        )
        assert response.status_code == 201
    new = NewIncident(
        rule_id="smoke-alarm",
        rule_version=1,
        group_key="B9",
        category="fire",
        priority=Priority.MAJOR,
        area=COMMUNITY,
        title="t",
        first_signal_at=NOW,
        last_signal_at=NOW,
        lat=22.780,
        lon=113.930,
        dispatch="nearest",
    )

    async def run() -> int:
        conn = await connect(database_url)
        async with conn:
            incident, _ = await open_or_attach(conn, new, now=NOW, sla=Sla())
            assert incident.suggested_unit_id == "U-NEAR"
            return incident.id

    incident_id = asyncio.run(run())
    act(admin, incident_id, "accept")
    dispatched = act(admin, incident_id, "dispatch")  # no unit named: the proposal
    assert dispatched.status_code == 200 and dispatched.json()["unit_id"] == "U-NEAR"


def test_the_incidents_timers_escalate_a_report_with_no_rules_engine_running(
    admin: httpx.Client, database_url: str
) -> None:
    """The timers are the incidents' own component: a grid worker's report, which no rule
    opened, escalates with no rules engine anywhere."""
    register_area(admin)
    filed = admin.post(
        "/api/v1/incidents",
        json={"category": "fire", "priority": "emergency", "title": "烟味", "area": COMMUNITY},
    )
    assert filed.status_code == 201, filed.text
    probe = Probe("timers")
    config = TimersConfig(database_url, Sla(), interval_s=0.05)
    two_minutes_on = lambda: datetime.now(UTC) + timedelta(minutes=2)  # noqa: E731

    with in_background(lambda: run_timers(config, probe, clock=two_minutes_on),
                       lambda: probe.up, what="incident timers"):  # fmt: skip
        shown = eventually(
            lambda: admin.get(f"/api/v1/incidents/{filed.json()['id']}").json(),
            lambda incident: incident["escalated_to"] is not None,
        )
    assert shown["escalated_to"] == COMMUNITY[:9] and shown["escalations"] == 1
