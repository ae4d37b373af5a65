"""What an integrator sees of a device: its state in the API and the list filtered by it,
the messages the hub refused, a device that never connects reported offline, and an offline
incident that closes (or is marked) when the device comes back. Real PostgreSQL, the real
pipeline, API and rules consumer."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from hub.contracts import Signal
from tests.conftest import TokenFactory
from tests.rules_helpers import RulesDriver, seed
from tests.test_ingest_pipeline import NAME, VALID, Harness, read
from tests.test_registry_api import COMMUNITY, register_area

OTHER = "440311002001"  # another street's community


def topic(device: str, channel: str = "telemetry", area: str = COMMUNITY) -> str:
    return f"sb/{area}/{device}/{channel}"


def smoke(seq: int, at: datetime, **extra: Any) -> dict[str, Any]:
    return {"seq": seq, "ts": at.isoformat(), "smoke": 0.05, **extra}


@pytest.fixture
def harness(admin: httpx.Client, database_url: str, settings: Any) -> Harness:
    register_area(admin)
    register_area(admin, OTHER, "别的社区")
    for device_id, kind, area in (
        ("SD-1", "smoke_sensor", COMMUNITY), ("SD-2", "smoke_sensor", COMMUNITY),
        ("SD-3", "smoke_sensor", COMMUNITY), ("RD-1", "id_reader", COMMUNITY),
        ("SD-9", "smoke_sensor", OTHER),
    ):  # fmt: skip
        response = admin.post("/api/v1/devices",
                              json={"id": device_id, "type": kind, "area": area})  # fmt: skip
        assert response.status_code == 201, response.text
    from hub.secret import hmac_key

    return Harness(database_url, hmac_key(settings))


@pytest.fixture
def now(harness: Harness) -> datetime:
    """The hub's time for the test: the wall clock once the devices are registered."""
    return datetime.now(UTC).replace(microsecond=0)


def ids(page: dict[str, Any]) -> list[str]:
    return [item["id"] for item in page["items"]]


# --- state in the API --------------------------------------------------------------------------


def test_a_device_carries_its_state_and_the_list_filters_by_it(
    harness: Harness, now: datetime, admin: httpx.Client, client_for: TokenFactory
) -> None:
    harness.send_batch(now, [
        (topic("SD-1", "status"), {"online": True, "fw": "2.1.0"}),
        (topic("SD-1"), smoke(1, now, battery_pct=15, rssi_dbm=-101)),
        (topic("SD-2"), smoke(1, now - timedelta(minutes=5), battery_pct=80)),
        (topic("SD-2", "status"), {"online": False}),  # its last will
    ])  # fmt: skip
    state = admin.get("/api/v1/devices/SD-1").json()["state"]
    assert state["status"] == "online" and state["online"] is True
    assert (state["battery_pct"], state["rssi_dbm"], state["fw"]) == (15, -101, "2.1.0")
    assert datetime.fromisoformat(state["last_seen"]) == now
    assert admin.get("/api/v1/devices/SD-2").json()["state"]["status"] == "offline"
    never = admin.get("/api/v1/devices/SD-3").json()["state"]
    assert (never["status"], never["last_seen"], never["online"]) == ("never_connected", None,
                                                                      False)  # fmt: skip

    listed = admin.get("/api/v1/devices", params={"area": COMMUNITY, "online": "false"}).json()
    assert ids(listed) == ["RD-1", "SD-2", "SD-3"]
    assert [i["state"]["status"] for i in listed["items"]] == ["never_connected", "offline",
                                                               "never_connected"]  # fmt: skip
    assert ids(admin.get("/api/v1/devices", params={"online": "true"}).json()) == ["SD-1"]
    assert ids(admin.get("/api/v1/devices", params={"battery_below": 20}).json()) == ["SD-1"]
    since = (now - timedelta(seconds=1)).isoformat()
    silent = admin.get("/api/v1/devices", params={"silent_since": since, "type": "smoke_sensor"})
    assert ids(silent.json()) == ["SD-3", "SD-9"]
    first = admin.get("/api/v1/devices", params={"online": "false", "limit": 2}).json()
    rest = admin.get("/api/v1/devices",
                     params={"online": "false", "limit": 2, "cursor": first["next"]}).json()  # fmt: skip
    assert ids(first) + ids(rest) == ["RD-1", "SD-2", "SD-3", "SD-9"]
    assert admin.get("/api/v1/devices", params={"battery_below": 101}).status_code == 422

    with client_for("viewer", OTHER) as elsewhere:
        assert elsewhere.get("/api/v1/devices/SD-1").status_code == 404
        assert ids(elsewhere.get("/api/v1/devices", params={"online": "false"}).json()) == ["SD-9"]


# --- dead letters ------------------------------------------------------------------------------


def test_dead_letters_show_why_messages_vanish_in_the_callers_area_only(
    harness: Harness, now: datetime, admin: httpx.Client, client_for: TokenFactory
) -> None:
    card = read(1, now, VALID[:-3] + "-" + VALID[-2:])  # not the shape of an ID number
    harness.send_batch(now, [
        (topic("SD-1"), smoke(1, now, smoke="dense")),
        (topic("SD-1"), smoke(1, now)),
        (topic("SD-1"), smoke(1, now)),  # the same message again
        (topic("NEW-7"), smoke(1, now)),  # not registered yet
        (topic("RD-1", "event"), card),
        (topic("SD-9", area=OTHER), {"seq": 1, "ts": 1}),
        (topic("SD-9", area=COMMUNITY), smoke(2, now)),  # another district's device, our topic
    ])  # fmt: skip
    with client_for("integrator", COMMUNITY) as integrator:
        page = integrator.get("/api/v1/dead-letters").json()
        reasons = {(d["device_id"], d["reason"]) for d in page["items"]}
        assert reasons == {("SD-1", "schema"), ("SD-1", "duplicate"), ("NEW-7", "unknown_device"),
                           ("RD-1", "bad_id_number")}  # fmt: skip
        schema = integrator.get("/api/v1/dead-letters",
                                params={"device_id": "SD-1", "reason": "schema"}).json()  # fmt: skip
        [letter] = schema["items"]
        assert letter["detail"].startswith("smoke") and letter["topic"] == topic("SD-1")
        assert letter["head"] is not None and letter["size"] > 0
        text = json.dumps(page, ensure_ascii=False)
        assert VALID[:-1] not in text and NAME not in text and NAME[0] not in text
        later = (now + timedelta(minutes=1)).isoformat()
        assert integrator.get("/api/v1/dead-letters", params={"since": later}).json()["items"] == []
        first = integrator.get("/api/v1/dead-letters", params={"limit": 3}).json()
        rest = integrator.get("/api/v1/dead-letters",
                              params={"limit": 3, "cursor": first["next"]}).json()  # fmt: skip
        assert len(first["items"]) == 3 and len(rest["items"]) == 1 and rest["next"] is None
        assert integrator.get("/api/v1/dead-letters", params={"reason": "nope"}).status_code == 422
    with client_for("integrator", OTHER) as theirs:
        mine = theirs.get("/api/v1/dead-letters").json()["items"]
        assert {(d["device_id"], d["reason"]) for d in mine} == {
            ("SD-9", "bad_timestamp"),
            ("SD-9", "area_mismatch"),
        }
    with client_for("operator", COMMUNITY) as operator:
        assert operator.get("/api/v1/dead-letters").status_code == 403
    assert len(admin.get("/api/v1/dead-letters").json()["items"]) == 6


# --- never connected ---------------------------------------------------------------------------


def test_a_device_that_never_connects_is_reported_offline_once(
    harness: Harness, now: datetime, admin: httpx.Client
) -> None:
    assert harness.sweep(now + timedelta(minutes=20)) == []  # inside every heartbeat
    # A reader's heartbeat is 30 min, a smoke sensor's 25 h: each is judged by its own.
    assert harness.sweep(now + timedelta(minutes=31)) == ["device_offline:never_connected"]
    assert [s.source_id for s in harness.signals] == ["RD-1"]
    day = now + timedelta(hours=26)
    assert harness.sweep(day) == ["device_offline:never_connected"] * 4
    assert sorted(s.source_id for s in harness.signals[1:]) == ["SD-1", "SD-2", "SD-3", "SD-9"]
    assert harness.sweep(day + timedelta(hours=1)) == []  # once
    state = admin.get("/api/v1/devices/SD-1").json()["state"]
    assert (state["status"], state["offline_reported"]) == ("never_connected", True)

    # Its first message, a day late, says it is there.
    harness.send(day, topic("SD-1"), smoke(1, day))
    assert harness.kinds()[-1] == "device_online"
    assert admin.get("/api/v1/devices/SD-1").json()["state"]["status"] == "online"


# --- back online -------------------------------------------------------------------------------


def health(kind: str, device: str, at: datetime) -> Signal:
    return Signal(ts=at, kind=kind, source_id=device, source_type="smoke_sensor", area=COMMUNITY,
                  site="楼村花园", building="3栋", attrs={"reason": "heartbeat_timeout"})  # fmt: skip


def incidents(database_url: str) -> list[dict[str, Any]]:
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        return conn.execute(
            "SELECT id, group_key, status, close_reason, recovered_at FROM incidents"
            " WHERE rule_id = 'device-offline' ORDER BY id"
        ).fetchall()


def test_an_offline_incident_closes_or_is_marked_when_the_device_returns(
    harness: Harness, now: datetime, admin: httpx.Client, database_url: str
) -> None:
    seed(database_url)
    t0 = now + timedelta(minutes=2)
    driver = RulesDriver(database_url, now=t0)
    try:
        driver.feed([health("device_offline", "SD-1", t0)])
        [opened] = incidents(database_url)
        assert opened["status"] == "reported"
        driver.now = t0 + timedelta(minutes=10)
        driver.feed([health("device_online", "SD-1", driver.now)])
        [closed] = incidents(database_url)
        assert (closed["status"], closed["close_reason"]) == ("closed", "resolved")
        assert closed["recovered_at"] == driver.now
        audit = admin.get(f"/api/v1/incidents/{closed['id']}/audit").json()
        assert [(a["action"], a["actor"], a["to_status"]) for a in audit][-1] == (
            "recover",
            "shaobing",
            "closed",
        )
        assert "device_online from SD-1" in audit[-1]["note"]
        # Back online with no incident open changes nothing.
        driver.feed([health("device_online", "SD-2", driver.now)])
        assert len(incidents(database_url)) == 1

        # The operator prefers to judge for themselves: the rule marks, people close.
        rule = admin.get("/api/v1/rules/device-offline").json()["document"]
        rule["recover"]["action"] = "note"
        assert admin.put("/api/v1/rules/device-offline", json=rule).status_code == 200
        driver.restart()
        driver.now = t0 + timedelta(minutes=20)
        driver.feed([health("device_offline", "SD-2", driver.now)])
        driver.now = t0 + timedelta(minutes=25)
        driver.feed([health("device_online", "SD-2", driver.now)])
        marked = incidents(database_url)[-1]
        assert (marked["status"], marked["recovered_at"]) == ("reported", driver.now)
        audit = admin.get(f"/api/v1/incidents/{marked['id']}/audit").json()
        assert (audit[-1]["action"], audit[-1]["to_status"]) == ("recover", "reported")
        shown = admin.get(f"/api/v1/incidents/{marked['id']}").json()
        assert datetime.fromisoformat(shown["recovered_at"]) == driver.now
    finally:
        driver.close()
