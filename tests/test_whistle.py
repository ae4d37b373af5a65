"""吹哨报到 end to end: a resident's report that the community accepts and that escalates to
the street, the street summoning two departments (one reports in on time through its link,
one goes overdue and its parent is told: 督办), close, 一案一评, the departments' ratings of the
whistle, and the month's assessment per department and per street against a hand count; then
who may summon and who sees what."""

from __future__ import annotations

import asyncio
import csv
import io
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row
from websockets.sync.client import connect as ws_connect

from hub.contracts import Priority
from hub.db import connect
from hub.secret import hmac_key
from hub.settings import Settings
from incidents.actions import apply_action
from incidents.escalation import escalate_overdue
from incidents.models import ActionIn
from incidents.sla import Sla
from incidents.states import Status
from incidents.summon_sweep import raise_overdue, remind_ratings
from tests.conftest import issue
from tests.notify_helpers import open_incident, running_notifier, wait_until
from tests.platform_receivers import Received, Webhook, serving
from tests.test_notify import channel, route
from tests.test_registry_api import COMMUNITY, register_area
from tests.test_reports import grid_worker, intake_key
from tests.test_stream import next_event, ws_url
from tests.test_topology import start  # noqa: F401  (the fixture)

DISTRICT = COMMUNITY[:6]
STREET = COMMUNITY[:9]
OTHER_DISTRICT = "440312"
NEXT_STREET = "440311002"


def _run(database_url: str, step: Any) -> Any:
    async def run() -> Any:
        conn = await connect(database_url)
        async with conn, conn.transaction():
            return await step(conn)

    return asyncio.run(run())


def _act(client: httpx.Client, incident_id: int, action: str, **fields: Any) -> dict[str, Any]:
    response = client.post(f"/api/v1/incidents/{incident_id}/actions",
                           json={"action": action, **fields})  # fmt: skip
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _department(admin: httpx.Client, unit_id: str, name: str, **doc: Any) -> None:
    body = {"id": unit_id, "name": name, "kind": "department", "area": DISTRICT,
            "categories": ["building_safety"], "lat": 22.78, "lon": 113.93, **doc}  # fmt: skip
    response = admin.post("/api/v1/units", json=body)
    assert response.status_code == 201, response.text
    assert response.json()["kind"] == "department"


@pytest.fixture
def districts(admin: httpx.Client) -> httpx.Client:
    for code, name in ((DISTRICT, "光明区"), (STREET, "公明街道"), (COMMUNITY, "楼村社区"),
                       (OTHER_DISTRICT, "另一区")):  # fmt: skip
        register_area(admin, code, name)
    return admin


def _of(received: list[Received], event: str) -> list[dict[str, Any]]:
    return [r.json() for r in received if r.json()["event"] == event]


def _link_in(message: dict[str, Any]) -> str:
    found = re.search(r"/u/(sbl_\w+)", message["text"])
    assert found, message["text"]
    return found[1]


@pytest.fixture
def phones() -> Iterator[dict[str, Webhook]]:
    """Each department's group robot, its parent's (督办), and the street's duty desk."""
    with (
        serving(Webhook("a")) as a,
        serving(Webhook("b")) as b,
        serving(Webhook("p")) as p,
        serving(Webhook("s")) as street,
    ):
        yield {"A": a, "B": b, "parent": p, "street": street}


def test_a_street_summons_two_departments_and_the_month_is_assessed(
    districts: httpx.Client, phones: dict[str, Webhook], api_url: str, database_url: str,
    settings: Settings, client_for: Any,
) -> None:  # fmt: skip
    admin = districts
    for key, secret in (("A", "a"), ("B", "b"), ("parent", "p"), ("street", "s")):
        channel(admin, id=f"ch-{key}", kind="webhook", url=phones[key].url, secret=secret,
                area=DISTRICT)  # fmt: skip
    _department(admin, "D-GOV", "区督查室", contacts={"channels": ["ch-parent"]})
    _department(admin, "D-ZJ", "区住建局", parent_id="D-GOV",
                contacts={"channels": ["ch-A"], "mobiles": ["13800138001"]})  # fmt: skip
    _department(admin, "D-CG", "区城管局", parent_id="D-GOV", contacts={"channels": ["ch-B"]})
    route(admin, id="street-desk", channels=["ch-street"],
          match={"events": ["incident.summon_overdue", "incident.rating_due"],
                 "area_prefix": STREET})  # fmt: skip

    # A resident reports; the community accepts; the report escalates to the street.
    resident = httpx.Client(base_url=api_url)
    filed = resident.post("/api/v1/public/reports", headers={"X-Intake-Key": intake_key(admin)},
                          json={"category": "building_safety", "title": "3栋外墙瓷砖空鼓脱落",
                                "building": "3栋"})  # fmt: skip
    assert filed.status_code == 201, filed.text
    receipt = filed.json()["receipt"]
    community = client_for("dispatcher", COMMUNITY)
    [report] = community.get("/api/v1/incidents?source=public").json()["items"]
    incident_id = report["id"]
    _act(community, incident_id, "accept")
    later = datetime.fromisoformat(report["resolve_by"]) + timedelta(seconds=1)
    [escalated] = _run(database_url, lambda c: escalate_overdue(c, later, Sla()))
    assert escalated.to_area == STREET

    street = client_for("dispatcher", STREET)
    viewer = street.get(f"/api/v1/incidents/{incident_id}").json()
    assert viewer["summons"] == []
    with (
        ws_connect(ws_url(api_url, issue(api_url, "viewer", STREET))) as ws,
        running_notifier(database_url, secret=hmac_key(settings)),
    ):
        blown = _act(street, incident_id, "summon", unit_ids=["D-ZJ", "D-CG"], lead="D-ZJ",
                     whistle="major", note="外墙脱落，请住建、城管到场")  # fmt: skip
        summoned = next_event(ws, "incident.updated")
        messages = {k: phones[k].wait_for(1) for k in ("A", "B")}
        # 攻坚哨: two hours to report in; the lead holds the incident.
        assert (blown["priority"], blown["status"], blown["unit_id"]) == (
            "major", "dispatched", "D-ZJ")  # fmt: skip
        records = {s["unit_id"]: s for s in blown["summons"]}
        assert set(records) == {"D-ZJ", "D-CG"} and records["D-ZJ"]["lead"]
        for record in records.values():
            allowed = (datetime.fromisoformat(record["report_by"])
                       - datetime.fromisoformat(record["summoned_at"]))  # fmt: skip
            assert allowed == timedelta(hours=2)
            assert (record["status"], record["light"]) == ("summoned", "green")
        assert summoned["action"] == "summon"

        links = {k: _link_in(_of(messages[k], "incident.summoned")[0]) for k in ("A", "B")}
        zj = httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {links['A']}"})
        view = zj.get("/api/v1/unit-link").json()
        assert view["actions"][0] == "report_in" and view["summon"]["unit_id"] == "D-ZJ"
        assert "报到" in httpx.get(f"{api_url}/u/{links['A']}").text
        _act(zj, incident_id, "acknowledge")
        reported = _act(zj, incident_id, "report_in")
        assert {s["unit_id"]: s["status"] for s in reported["summons"]} == {
            "D-ZJ": "reported", "D-CG": "summoned"}  # fmt: skip
        assert next_event(ws, "incident.updated")["action"] in ("acknowledge", "report_in")
        photo = zj.post(f"/api/v1/incidents/{incident_id}/attachments",
                        files={"file": ("a.png", _png(), "image/png")})  # fmt: skip
        assert photo.status_code == 201, photo.text
        _act(zj, incident_id, "comment", note="已到场，拉警戒线")

        # 城管 never reports in: two hours on, it is overdue, and the street and its parent
        # hear of it (督办) — once, however often the timer runs.
        past = datetime.now(UTC) + timedelta(hours=2, seconds=1)
        late = _run(database_url, lambda c: raise_overdue(c, past))
        assert [(o.unit_id, o.parent_id) for o in late] == [("D-CG", "D-GOV")]
        assert _run(database_url, lambda c: raise_overdue(c, past)) == []
        overdue = next_event(ws, "incident.summon_overdue")
        assert (overdue["id"], overdue["unit_id"]) == (incident_id, "D-CG")
        [to_parent] = _of(phones["parent"].wait_for(1), "incident.summon_overdue")
        assert "区城管局" in to_parent["title"] and "督办" in to_parent["title"]
        [to_street] = _of(phones["street"].wait_for(1), "incident.summon_overdue")
        assert to_street["incident"]["id"] == incident_id
        board = street.get(f"/api/v1/incidents/{incident_id}").json()
        lights = {s["unit_id"]: (s["status"], s["light"]) for s in board["summons"]}
        assert lights == {"D-ZJ": ("reported", "green"), "D-CG": ("overdue", "red")}

        _act(zj, incident_id, "start")
        _act(zj, incident_id, "resolve", note="已排险")
        _act(street, incident_id, "verify")
        _act(street, incident_id, "close", reason="resolved")

        # 一案一评: reminded until both are rated; then no more.
        closed_at = datetime.fromisoformat(
            street.get(f"/api/v1/incidents/{incident_id}").json()["closed_at"])  # fmt: skip
        day_on = closed_at + timedelta(days=1, seconds=1)
        assert _run(database_url, lambda c: remind_ratings(c, day_on, Sla())) == [incident_id]
        [due] = _of(phones["street"].wait_for(2), "incident.rating_due")
        assert "区住建局" in due["text"] and "区城管局" in due["text"]
        assert _run(database_url, lambda c: remind_ratings(c, day_on, Sla())) == []
        _act(street, incident_id, "rate_unit", unit_id="D-ZJ", rating=5, comment="到场快")
        _act(street, incident_id, "rate_unit", unit_id="D-CG", rating=2, comment="未报到")
        again = street.post(
            f"/api/v1/incidents/{incident_id}/actions",
            json={"action": "rate_unit", "unit_id": "D-CG", "rating": 3},
        )
        assert again.status_code == 409
        two_days = closed_at + timedelta(days=3)
        assert _run(database_url, lambda c: remind_ratings(c, two_days, Sla())) == []

    # The departments rate the whistle through their links, after the close.
    cg = httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {links['B']}"})
    assert cg.get("/api/v1/unit-link").json()["actions"] == ["rate_whistle"]
    _act(zj, incident_id, "rate_whistle", rating=4, comment="需要，说得清楚")
    _act(cg, incident_id, "rate_whistle", rating=2, comment="不属本部门")
    assert zj.get("/api/v1/unit-link").status_code == 401  # rated: the link is done
    assert resident.post(f"/api/v1/public/reports/{receipt}/rating",
                         json={"rating": 5}).status_code == 200  # fmt: skip

    second = _routine_whistle(database_url)
    audit = admin.get(f"/api/v1/incidents/{second}/audit").json()
    flags = sorted((a["data"]["unit_id"], a["data"]["flags"][0], a["actor"])
                   for a in audit if a["action"] == "flag_unit")  # fmt: skip
    assert flags == [("D-CG", "not_reported", "shaobing"), ("D-CG", "shirking", "street"),
                     ("D-ZJ", "late", "shaobing")]  # fmt: skip
    _check_assessment(street, admin)


def _png() -> bytes:
    from tests.test_reports import photo

    return photo("PNG")


def _routine_whistle(database_url: str) -> int:
    """A 日常哨 two days ago: 住建 reports in a day and an hour late, 城管 never; closed."""
    incident = open_incident(database_url, COMMUNITY, title="路灯不亮", building="5栋",
                             priority=Priority.ROUTINE, category="building_safety")  # fmt: skip
    began = datetime.now(UTC) - timedelta(days=2)

    async def steps(conn: Any) -> None:
        async def do(after: timedelta, **action: Any) -> None:
            await apply_action(conn, incident.id, ActionIn(**action), actor="street",
                               scope=STREET, now=began + after)  # fmt: skip

        await do(timedelta(0), action="accept")
        await do(timedelta(minutes=5), action="summon", unit_ids=["D-ZJ", "D-CG"])
        await do(timedelta(hours=25), action="report_in", unit_id="D-ZJ")
        await do(timedelta(hours=26), action="close", reason="resolved")
        await do(timedelta(hours=27), action="flag_unit", unit_id="D-CG", flags=["shirking"])
        await do(timedelta(hours=27), action="rate_unit", unit_id="D-ZJ", rating=3)

    _run(database_url, steps)
    return incident.id


def _check_assessment(street: httpx.Client, admin: httpx.Client) -> None:
    """By hand: 住建 summoned twice, reported in twice, once on time, both resolved, rated 5
    and 3, one late flag; 城管 summoned twice, never reported in, rated 2 once, flagged
    not_reported and shirking. The street blew one 攻坚哨 and one 日常哨; the whistle ratings
    given were 4 and 2; the resident gave 5."""
    by_unit = {g["key"]: g for g in street.get("/api/v1/stats?group_by=unit").json()["groups"]}
    wanted = {
        "D-ZJ": {"summoned": 2, "reported": 2, "reported_on_time": 1, "resolved": 2,
                 "mean_rating": 4.0, "flags": {"late": 1}, "name": "区住建局"},
        "D-CG": {"summoned": 2, "reported": 0, "reported_on_time": 0, "resolved": 2,
                 "mean_rating": 2.0, "flags": {"not_reported": 1, "shirking": 1}},
    }  # fmt: skip
    assert set(by_unit) == set(wanted)
    for unit_id, figures in wanted.items():
        assert {k: by_unit[unit_id][k] for k in figures} == figures, unit_id
    [area] = street.get("/api/v1/stats?group_by=area").json()["groups"]
    assert (area["key"], area["whistles"], area["mean_whistle_rating"], area["satisfaction"]) == (
        COMMUNITY, {"major": 1, "routine": 1}, 3.0, 5.0)  # fmt: skip
    # per street: the community's figures rolled up into its street, the street as the key
    [per_street] = street.get("/api/v1/stats?group_by=area&level=street").json()["groups"]
    assert (per_street["key"], per_street["whistles"], per_street["mean_whistle_rating"],
            per_street["satisfaction"], per_street["total"]) == (
        COMMUNITY[:9], {"major": 1, "routine": 1}, 3.0, 5.0, area["total"])  # fmt: skip
    assert street.get("/api/v1/stats?group_by=area&level=village").status_code == 422

    sheet = street.get("/api/v1/stats.csv?group_by=unit")
    assert sheet.status_code == 200 and sheet.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(sheet.text.removeprefix("\ufeff"))))
    assert [(r["key"], r["name"], r["summoned"], r["reported_on_time"], r["mean_rating"],
             r["flags_not_reported"], r["flags_late"], r["flags_shirking"]) for r in rows] == [
        ("D-CG", "区城管局", "2", "0", "2", "1", "0", "1"),
        ("D-ZJ", "区住建局", "2", "1", "4", "0", "1", "0"),
    ]  # fmt: skip
    areas = list(csv.DictReader(io.StringIO(
        street.get("/api/v1/stats.csv?group_by=area").text.removeprefix("\ufeff"))))  # fmt: skip
    assert [(r["key"], r["whistles_major"], r["whistles_routine"], r["mean_whistle_rating"],
             r["satisfaction"]) for r in areas] == [(COMMUNITY, "1", "1", "3", "5")]  # fmt: skip
    assert admin.get("/api/v1/stats.csv?group_by=unit&from=2030-01-01T00:00:00Z"
                     "&to=2020-01-01T00:00:00Z").status_code == 422  # fmt: skip


def test_who_may_summon_and_who_sees_what(
    districts: httpx.Client, api_url: str, database_url: str, client_for: Any
) -> None:
    admin = districts
    _department(admin, "D-ZJ", "区住建局")
    _department(admin, "D-CG", "区城管局")
    _department(admin, "D-OFF", "区水务局", on_duty=False)
    response = admin.post("/api/v1/units", json={
        "id": "D-FAR", "name": "另一区住建局", "kind": "department", "area": OTHER_DISTRICT})  # fmt: skip
    assert response.status_code == 201, response.text
    register_area(admin, NEXT_STREET, "另一街道")
    assert admin.post("/api/v1/units", json={"id": "D-NEXT", "name": "邻街城管中队",
                      "kind": "department", "area": NEXT_STREET}).status_code == 201  # fmt: skip
    assert admin.post("/api/v1/units", json={"id": "D-X", "name": "x", "kind": "department",
                      "area": DISTRICT, "parent_id": "nobody"}).status_code == 422  # fmt: skip
    listed = admin.get("/api/v1/units?kind=department").json()["items"]
    assert [u["id"] for u in listed] == ["D-CG", "D-FAR", "D-NEXT", "D-OFF", "D-ZJ"]

    summoned = open_incident(database_url, COMMUNITY, title="井盖缺失")
    other = open_incident(database_url, COMMUNITY, title="另一起", building="9栋")
    street = client_for("dispatcher", STREET)
    for incident in (summoned, other):
        _act(street, incident.id, "accept")

    def summon(client: httpx.Client, *unit_ids: str, **more: Any) -> httpx.Response:
        return client.post(
            f"/api/v1/incidents/{summoned.id}/actions",
            json={"action": "summon", "unit_ids": list(unit_ids), **more},
        )

    assert summon(client_for("viewer", STREET), "D-ZJ").status_code == 403
    assert summon(client_for("operator", STREET), "D-ZJ").status_code == 403
    for unit_ids in (("D-FAR",), ("D-ZJ", "NOBODY"), ("D-OFF",)):
        refused = summon(street, *unit_ids)
        assert refused.status_code == 422 and "unit_ids" in refused.text, unit_ids
    assert summon(street, "D-ZJ", lead="D-CG").status_code == 422  # lead not among them
    # Nor a unit of a neighbouring street, outside the caller's area and not over it.
    assert summon(street, "D-NEXT").status_code == 422
    picker = street.get("/api/v1/units?kind=department&above=true").json()["items"]
    assert [u["id"] for u in picker] == ["D-CG", "D-OFF", "D-ZJ"]
    assert street.get(f"/api/v1/incidents/{summoned.id}").json()["summons"] == []

    first = summon(street, "D-ZJ")
    assert first.status_code == 200, first.text
    again = summon(street, "D-ZJ", "D-CG", lead="D-CG")  # repeated: adds 城管, keeps 住建's
    assert again.status_code == 200, again.text
    records = {s["unit_id"]: s for s in again.json()["summons"]}
    assert set(records) == {"D-ZJ", "D-CG"} and records["D-CG"]["lead"]
    assert records["D-ZJ"]["summoned_at"] == first.json()["summons"][0]["summoned_at"]

    zj_staff = grid_worker(api_url, "D-ZJ", DISTRICT)
    far_staff = grid_worker(api_url, "D-FAR", OTHER_DISTRICT)
    assert [i["id"] for i in zj_staff.get("/api/v1/incidents").json()["items"]] == [summoned.id]
    assert zj_staff.get(f"/api/v1/incidents/{other.id}").status_code == 404
    assert far_staff.get(f"/api/v1/incidents/{summoned.id}").status_code == 404
    assert far_staff.get("/api/v1/incidents").json()["items"] == []
    assert summon(zj_staff, "D-CG").status_code == 403
    for_other = zj_staff.post(f"/api/v1/incidents/{summoned.id}/actions",
                              json={"action": "report_in", "unit_id": "D-CG"})  # fmt: skip
    assert for_other.status_code == 403
    # Not the lead: it reports in, but does not start the work.
    working = zj_staff.post(f"/api/v1/incidents/{summoned.id}/actions", json={"action": "start"})
    assert working.status_code == 403
    done = _act(zj_staff, summoned.id, "report_in")
    assert {s["unit_id"]: s["status"] for s in done["summons"]}["D-ZJ"] == "reported"
    twice = zj_staff.post(f"/api/v1/incidents/{summoned.id}/actions",
                          json={"action": "report_in"})  # fmt: skip
    assert twice.status_code == 409
    # A dispatcher records 城管's report-in; a dispatcher may not rate a whistle for it.
    _act(street, summoned.id, "report_in", unit_id="D-CG")
    assert street.post(f"/api/v1/incidents/{summoned.id}/actions",
                       json={"action": "rate_whistle", "unit_id": "D-CG", "rating": 3}
                       ).status_code == 403  # fmt: skip
    # Ratings and flags wait for the close; flags are for 日常哨 only (this one is 应急哨).
    early = street.post(
        f"/api/v1/incidents/{summoned.id}/actions",
        json={"action": "rate_unit", "unit_id": "D-ZJ", "rating": 4},
    )
    assert early.status_code == 409
    _act(street, summoned.id, "close", reason="resolved")
    flag = street.post(
        f"/api/v1/incidents/{summoned.id}/actions",
        json={"action": "flag_unit", "unit_id": "D-ZJ", "flags": ["repeat"]},
    )
    assert flag.status_code == 422
    stranger = street.post(
        f"/api/v1/incidents/{summoned.id}/actions",
        json={"action": "rate_unit", "unit_id": "D-OFF", "rating": 4},
    )
    assert stranger.status_code == 422


SUMMONED_PATHS: dict[Status, list[str]] = {
    Status.DISPATCHED: [],
    Status.HANDLING: ["start"],
    Status.RESOLVED: ["start", "resolve"],
    Status.VERIFIED: ["start", "resolve", "verify"],
    Status.CLOSED: ["start", "resolve", "verify", "close"],
}


@pytest.mark.parametrize("status", list(SUMMONED_PATHS))
def test_report_in_and_ratings_in_every_state(
    districts: httpx.Client, api_url: str, database_url: str, status: Status
) -> None:
    """report_in while open, rate_unit once closed, rate_whistle any time; else a 409."""
    admin = districts
    _department(admin, "D-ZJ", "区住建局")
    staff = grid_worker(api_url, "D-ZJ", DISTRICT)
    incident = open_incident(database_url, COMMUNITY, title=f"{status.value}")
    _act(admin, incident.id, "accept")
    _act(admin, incident.id, "summon", unit_ids=["D-ZJ"], lead="D-ZJ")
    for step in SUMMONED_PATHS[status]:
        _act(admin, incident.id, step, **({"reason": "resolved"} if step == "close" else {}))
    open_ = status is not Status.CLOSED
    cases = [
        (admin, {"action": "report_in", "unit_id": "D-ZJ"}, 200 if open_ else 409),
        (admin, {"action": "rate_unit", "unit_id": "D-ZJ", "rating": 4}, 409 if open_ else 200),
        (staff, {"action": "rate_whistle", "rating": 5}, 200),
    ]
    for client, body, expected in cases:
        response = client.post(f"/api/v1/incidents/{incident.id}/actions", json=body)
        assert response.status_code == expected, (status, body, response.text)
        if expected == 409:
            assert f"cannot {body['action']}" in response.json()["error"]["message"]


def _summoned_long_ago(database_url: str, count: int) -> None:
    """`count` incidents, each with 住建 summoned an hour ago and never reported in."""
    ids = [open_incident(database_url, COMMUNITY, title=f"#{n}", building=f"{n}栋").id
           for n in range(count)]  # fmt: skip
    then = datetime.now(UTC) - timedelta(hours=1)

    async def steps(conn: Any) -> None:
        for incident_id in ids:
            for action in (ActionIn(action="accept"),
                           ActionIn(action="summon", unit_ids=["D-ZJ"])):  # fmt: skip
                await apply_action(conn, incident_id, action, actor="t", scope="", now=then)

    _run(database_url, steps)


def test_a_timer_killed_mid_sweep_raises_each_overdue_once(
    districts: httpx.Client,
    database_url: str,
    start: Any,  # noqa: F811  (the fixture)
) -> None:
    """`shaobing rules` SIGKILLed while its sweep holds the 报到 records: a new one raises
    every overdue unit, and none twice (the marks, audit rows and events share a
    transaction)."""
    _department(districts, "D-ZJ", "区住建局")
    count = 300
    _summoned_long_ago(database_url, count)
    run = start(database_url)
    rules = run("rules", "rules")
    sweeping = (
        "SELECT count(*) AS n FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
        " WHERE c.relname = 'incident_summons' AND l.mode = 'RowShareLock'"
    )
    raised = "SELECT count(*) AS n FROM incident_events WHERE kind = 'incident.summon_overdue'"
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if conn.execute(sweeping).fetchone()["n"] or conn.execute(raised).fetchone()["n"]:
                break
            time.sleep(0.005)
        rules.kill()
        before = conn.execute(raised).fetchone()["n"]
        assert before in (0, count)  # all of a sweep or none of it
        run("rules-again", "rules").wait_ready()
        wait_until(lambda: conn.execute(raised).fetchone()["n"] >= count, timeout=30)
        rows = conn.execute(
            "SELECT incident_id, count(*) AS n FROM incident_events"
            " WHERE kind = 'incident.summon_overdue' GROUP BY incident_id"
        ).fetchall()
        audits = conn.execute(
            "SELECT count(*) AS n FROM incident_audit WHERE action = 'summon_overdue'"
        ).fetchone()["n"]
        marked = conn.execute(
            "SELECT count(*) AS n FROM incident_summons WHERE overdue_at IS NOT NULL"
        ).fetchone()["n"]
    assert len(rows) == count and {r["n"] for r in rows} == {1}
    assert audits == marked == count


def test_a_summons_fields_on_other_actions_are_refused(
    districts: httpx.Client, api_url: str, database_url: str
) -> None:
    """`lead`, `unit_ids` and `whistle` belong to summon: on report_in (or any other action)
    they would make a summoned unit the incident's own (then free to start and resolve it)
    or raise its priority past every check a summon makes; a 422, and nothing changed."""
    admin = districts
    _department(admin, "D-ZJ", "区住建局")
    _department(admin, "D-CG", "区城管局")
    staff = grid_worker(api_url, "D-ZJ", DISTRICT)
    incident = open_incident(database_url, COMMUNITY, title="井盖缺失")
    _act(admin, incident.id, "accept")
    before = _act(admin, incident.id, "summon", unit_ids=["D-ZJ", "D-CG"], lead="D-CG")
    assert before["unit_id"] == "D-CG"
    url = f"/api/v1/incidents/{incident.id}/actions"
    hijacks = [
        (staff, {"action": "report_in", "unit_ids": ["D-ZJ"], "lead": "D-ZJ"}),
        (staff, {"action": "rate_whistle", "rating": 5, "whistle": "emergency"}),
        (admin, {"action": "report_in", "unit_id": "D-ZJ", "whistle": "emergency"}),
        (admin, {"action": "comment", "note": "x", "unit_ids": ["D-ZJ"], "lead": "D-ZJ"}),
        (admin, {"action": "close", "reason": "resolved", "flags": ["late"]}),
    ]
    for client, body in hijacks:
        response = client.post(url, json=body)
        assert response.status_code == 422, (body, response.text)
    after = admin.get(f"/api/v1/incidents/{incident.id}").json()
    assert (after["unit_id"], after["priority"], after["status"]) == (
        before["unit_id"], before["priority"], before["status"])  # fmt: skip
    assert {s["unit_id"]: s["lead"] for s in after["summons"]} == {"D-ZJ": False, "D-CG": True}
    assert staff.post(url, json={"action": "start"}).status_code == 403


def test_the_summoning_level_rates_and_flags_not_the_one_below(
    districts: httpx.Client, database_url: str, client_for: Any
) -> None:
    """The street blew the whistle: the community under it (which reaches the incident) may
    neither rate nor flag the departments the street summoned (403); the street may."""
    _department(districts, "D-ZJ", "区住建局")
    street = client_for("dispatcher", STREET)
    community = client_for("dispatcher", COMMUNITY)
    incident = open_incident(database_url, COMMUNITY, title="路灯不亮",
                             priority=Priority.ROUTINE)  # fmt: skip
    _act(community, incident.id, "accept")
    _act(street, incident.id, "summon", unit_ids=["D-ZJ"])
    _act(street, incident.id, "close", reason="resolved")
    url = f"/api/v1/incidents/{incident.id}/actions"
    rate = {"action": "rate_unit", "unit_id": "D-ZJ", "rating": 4}
    flag = {"action": "flag_unit", "unit_id": "D-ZJ", "flags": ["shirking"]}
    for body in (rate, flag):
        refused = community.post(url, json=body)
        assert refused.status_code == 403, (body, refused.text)
    [record] = street.get(f"/api/v1/incidents/{incident.id}").json()["summons"]
    assert (record["rating"], record["flags"]) == (None, ["not_reported"])
    for body in (rate, flag):
        assert street.post(url, json=body).status_code == 200, body


def test_a_grid_workers_report_with_departments_summoned_is_theirs_to_work(
    districts: httpx.Client, api_url: str, client_for: Any
) -> None:
    """A grid worker works its own report while no unit has it (design §6); once the street
    summons departments to it (no lead), it is theirs: the reporter may no longer take it on,
    start or resolve it (403), and may still comment."""
    _department(districts, "D-ZJ", "区住建局")
    worker = grid_worker(api_url, None, COMMUNITY)
    filed = worker.post("/api/v1/incidents", json={
        "category": "building_safety", "priority": "routine", "title": "外墙空鼓",
        "area": COMMUNITY, "building": "3栋"})  # fmt: skip
    assert filed.status_code == 201, filed.text
    incident_id = filed.json()["id"]
    street = client_for("dispatcher", STREET)
    _act(street, incident_id, "accept")
    _act(street, incident_id, "summon", unit_ids=["D-ZJ"])
    url = f"/api/v1/incidents/{incident_id}/actions"
    for action in ("acknowledge", "start", "resolve"):
        refused = worker.post(url, json={"action": action})
        assert refused.status_code == 403, (action, refused.text)
    after = street.get(f"/api/v1/incidents/{incident_id}").json()
    assert (after["status"], after["unit_id"]) == ("dispatched", None)
    assert _act(worker, incident_id, "comment", note="住建已联系")["status"] == "dispatched"
