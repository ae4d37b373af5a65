"""Rules live: the signal log → the rules consumer → incidents; cooldown, restart, backtest =
live, and an MQTT smoke alarm all the way to an incident."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from hub.contracts import Signal
from hub.db import connect
from hub.settings import MqttUrl
from incidents.actions import apply_action
from incidents.models import ActionIn
from tests.ingest_helpers import Publisher, running_consumer, wait_for
from tests.rules_helpers import RulesDriver, running_rules, seed
from tests.test_registry_api import COMMUNITY, register_area

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
PLACE = f"area={COMMUNITY}|site=楼村花园|building="


def alarm(
    at: float, building: str = "3栋", kind: str = "smoke_alarm", source: str = "SD-1"
) -> Signal:
    return Signal(ts=T0 + timedelta(seconds=at), kind=kind, source_id=source,
                  source_type="camera" if source.startswith("CAM") else "smoke_sensor",
                  area=COMMUNITY, site="楼村花园", building=building, value=3.1)  # fmt: skip


@pytest.fixture
def driver(admin: httpx.Client, database_url: str) -> Iterator[RulesDriver]:
    """The built-in rules and a consumer at T0; `feed` stores signals received at the
    driver's clock, which the test moves."""
    register_area(admin)
    seed(database_url)
    rules = RulesDriver(database_url, now=T0)
    yield rules
    rules.close()


def feed_at(driver: RulesDriver, signals: list[Signal]) -> None:
    """Each signal received when its device says it happened (a device with a true clock)."""
    for signal in signals:
        driver.now = signal.ts + timedelta(milliseconds=50)
        driver.feed([signal])


def incidents(database_url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT rule_id, group_key, priority, signal_count, title FROM incidents ORDER BY id"
        ).fetchall()


def close(database_url: str, incident_id: int, at: datetime) -> None:
    async def run() -> None:
        conn = await connect(database_url)
        async with conn:
            await apply_action(conn, incident_id, ActionIn(action="close", reason="false_alarm"),
                               actor="t", scope="", now=at)  # fmt: skip
            await conn.commit()

    asyncio.run(run())


def test_signals_open_and_attach_incidents(driver: RulesDriver, database_url: str) -> None:
    feed_at(driver, [alarm(0), alarm(5), alarm(10, building="5栋"),
                     alarm(40, kind="camera_smoke", source="CAM-1")])  # fmt: skip
    assert incidents(database_url) == [
        ("smoke-alarm", PLACE + "3栋", "emergency", 3, "烟感报警：楼村花园 3栋"),
        ("smoke-alarm", PLACE + "5栋", "major", 1, "烟感报警：楼村花园 5栋"),
    ]  # the camera in 3栋 confirmed that one and raised it to emergency, and opened nothing else


def test_cooldown_after_close(driver: RulesDriver, database_url: str) -> None:
    feed_at(driver, [alarm(0)])
    [(incident_id,)] = psycopg.connect(database_url).execute("SELECT id FROM incidents").fetchall()
    close(database_url, incident_id, T0 + timedelta(seconds=60))
    feed_at(driver, [alarm(120)])  # inside the 10-minute cooldown: nothing
    assert len(incidents(database_url)) == 1
    feed_at(driver, [alarm(60 + 11 * 60)])  # the first alarm after it opens a new incident
    assert len(incidents(database_url)) == 2


def test_windows_survive_a_restart(
    driver: RulesDriver, admin: httpx.Client, database_url: str
) -> None:
    # A rule that needs 2 signals within 30 s; the first reaches one consumer, the second
    # arrives after a restart that rebuilt the window from the stored signals.
    twice = {"id": "loitering-twice", "name": "Loitering twice", "match": {"kind": ["loitering"]},
             "threshold": {"count": 2, "within": "30s"}, "group_by": ["source_id"],
             "incident": {"category": "security", "priority": "routine",
                          "title": "Loitering at {site}"}}  # fmt: skip
    assert admin.post("/api/v1/rules", json=twice).status_code == 201
    driver.restart()
    feed_at(driver, [alarm(0, kind="loitering", source="CAM-1")])
    assert incidents(database_url) == []
    driver.restart()
    feed_at(driver, [alarm(10, kind="loitering", source="CAM-1")])
    assert [(r[0], r[1], r[3]) for r in incidents(database_url)] == [
        ("loitering-twice", f"area={COMMUNITY}|source_id=CAM-1", 2)
    ]


def test_one_camera_smoke_signal_opens_an_incident(driver: RulesDriver, database_url: str) -> None:
    """The camera judged the scene over seconds and reports one event an episode: a
    smoke-only scene opens an incident from that one signal."""
    smoke = replace(alarm(0, kind="camera_smoke", source="CAM-1"), confidence=0.45)
    feed_at(driver, [smoke])
    assert [r[0] for r in incidents(database_url)] == ["camera-fire"]


def test_a_crowds_title_counts_its_people(driver: RulesDriver, database_url: str) -> None:
    crowd = replace(alarm(0, kind="crowd", source="CAM-2"), value=21.0,
                    attrs={"zone": "广场", "count": 21})  # fmt: skip
    feed_at(driver, [crowd])
    assert [(r[0], r[4]) for r in incidents(database_url)] == [
        ("crowd", "人员聚集 21 人：楼村花园 广场")
    ]


def test_backtest_agrees_with_live(
    driver: RulesDriver, admin: httpx.Client, database_url: str
) -> None:
    signals = [alarm(i * 17, building=f"{i % 3}栋") for i in range(12)]
    signals += [
        alarm(100, kind="camera_fire", source="CAM-1"),
        alarm(110, kind="camera_fire", source="CAM-1"),
    ]
    feed_at(driver, sorted(signals, key=lambda s: s.ts))
    span = {
        "from": (T0 - timedelta(minutes=1)).isoformat(),
        "to": (T0 + timedelta(hours=1)).isoformat(),
    }
    for rule_id in ("smoke-alarm", "camera-fire", "confirmed-fire"):
        result = admin.post(f"/api/v1/rules/{rule_id}/backtest", json=span)
        assert result.status_code == 200, result.text
        live_count = [r for r in incidents(database_url) if r[0] == rule_id]
        assert result.json()["incidents"] == len(live_count), rule_id
    draft = admin.post("/api/v1/rules/smoke-alarm/backtest",
                       json={**span, "rule": {"name": "draft", "match": {"kind": ["smoke_alarm"]},
                                              "group_by": ["area"],
                                              "incident": {"category": "fire", "priority": "major",
                                                           "title": "x"}}})  # fmt: skip
    assert draft.json()["incidents"] == 1  # one area, one incident
    bad = admin.post("/api/v1/rules/smoke-alarm/backtest", json={**span, "rule": {"name": "x"}})
    assert bad.status_code == 422 and bad.json()["error"]["fields"][0]["field"].startswith(
        "body.rule"
    )


def test_mqtt_smoke_alarm_becomes_an_incident(
    admin: httpx.Client, database_url: str, mqtt_server: MqttUrl
) -> None:
    register_area(admin)
    seed(database_url)
    admin.post("/api/v1/devices", json={"id": "SD-E2E", "type": "smoke_sensor", "area": COMMUNITY,
                                        "site": "楼村花园", "building": "7栋", "floor": "3"})  # fmt: skip

    with running_rules(database_url), running_consumer(database_url, mqtt_server):
        pub = Publisher(mqtt_server)
        pub.send(f"sb/{COMMUNITY}/SD-E2E/event",
                 {"seq": 1, "ts": int(time.time() * 1000), "type": "smoke_alarm", "smoke": 3.4})  # fmt: skip
        pub.close()
        wait_for(database_url, "SELECT count(*) FROM incidents", lambda n: n == 1)
    shown = admin.get("/api/v1/incidents").json()["items"]
    # The floor travels from the device through its signal to the incident and its title.
    assert [(i["rule_id"], i["title"], i["status"], i["floor"]) for i in shown] == [
        ("smoke-alarm", "烟感报警：楼村花园 7栋 3层", "reported", "3"),
    ]


def test_silences_mute_matching_signals_for_their_time(
    driver: RulesDriver, admin: httpx.Client, database_url: str, client_for: Any
) -> None:
    drill = {
        "matcher": {"kind": ["smoke_alarm"], "building": "3栋", "area_prefix": COMMUNITY},
        "starts_at": T0.isoformat(),
        "ends_at": (T0 + timedelta(minutes=30)).isoformat(),
        "reason": "fire drill in 3栋",
    }
    created = admin.post("/api/v1/silences", json=drill)
    assert created.status_code == 201, created.text
    driver.restart()  # a silence reaches a running consumer by NOTIFY; this one starts anew
    # The silence exists since before T0, as far as the hub knows: received after it.
    created_at = datetime.fromisoformat(created.json()["created_at"])
    driver.now = max(created_at, T0 + timedelta(seconds=62))
    driver.feed([alarm(60), alarm(61, building="5栋")])  # 3栋 is silenced, 5栋 is not
    assert [r[1] for r in incidents(database_url)] == [PLACE + "5栋"]
    driver.now += timedelta(minutes=31)
    driver.feed([alarm(31 * 60)])  # the drill is over
    assert [r[1] for r in incidents(database_url)] == [PLACE + "5栋", PLACE + "3栋"]
    bad = admin.post("/api/v1/silences", json={**drill, "ends_at": T0.isoformat()})
    assert bad.status_code == 422 and "after starts_at" in bad.json()["error"]["message"]
    wide = client_for("operator", "440311002")
    assert wide.post("/api/v1/silences", json=drill).status_code == 403
    assert client_for("viewer", "").post("/api/v1/silences", json=drill).status_code == 403
    expired = admin.delete(f"/api/v1/silences/{created.json()['id']}")
    assert expired.status_code == 200
    assert admin.get("/api/v1/silences", params={"active": "true"}).json()["items"] == []
    assert len(admin.get("/api/v1/silences").json()["items"]) == 1  # kept for the record


def test_rule_precision(driver: RulesDriver, admin: httpx.Client, database_url: str) -> None:
    feed_at(driver, [alarm(0), alarm(5), alarm(10, building="5栋"), alarm(12, building="6栋")])
    listed = admin.get("/api/v1/incidents").json()["items"]
    by_building = {i["building"]: i["id"] for i in listed}
    for building, reason in (("3栋", "false_alarm"), ("5栋", "resolved")):
        response = admin.post(f"/api/v1/incidents/{by_building[building]}/actions",
                              json={"action": "close", "reason": reason})  # fmt: skip
        assert response.status_code == 200
    span = {
        "from": (T0 - timedelta(days=1)).isoformat(),
        "to": (T0 + timedelta(days=1)).isoformat(),
    }
    # The incidents were created "now" (the engine's event time is T0, in the past): widen.
    span = {"from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z"}
    stats = admin.get("/api/v1/rules/smoke-alarm/stats", params=span).json()
    assert stats == {"rule_id": "smoke-alarm", "fired": 3, "attached": 1, "closed": 2,
                     "false_alarms": 1, "precision": 0.5}  # fmt: skip


def test_live_incidents_propose_the_nearest_unit(driver: RulesDriver, admin: httpx.Client) -> None:
    admin.post("/api/v1/devices", json={"id": "SD-1", "type": "smoke_sensor", "area": COMMUNITY,
                                        "building": "3栋", "lat": 22.780, "lon": 113.930})  # fmt: skip
    for unit_id, lat, lon in (("U-NEAR", 22.781, 113.931), ("U-FAR", 22.90, 113.99)):
        admin.post("/api/v1/units", json={"id": unit_id, "name": unit_id, "kind": "fire",
                                          "area": COMMUNITY, "lat": lat, "lon": lon,
                                          "categories": ["fire"]})  # fmt: skip
    feed_at(driver, [alarm(0)])  # smoke-alarm has "dispatch": "nearest"
    [incident] = admin.get("/api/v1/incidents").json()["items"]
    assert incident["suggested_unit_id"] == "U-NEAR"
    assert (incident["lat"], incident["lon"]) == (22.780, 113.930)
