"""GET /api/v1/signals: what devices raised, from real MQTT through the real consumer, read by
kind, by source and by page, scoped by area, with no ID number in any answer."""

from __future__ import annotations

import random
import time
from typing import Any

import httpx

from hub.settings import MqttUrl
from simulator.fleet import random_id_number
from tests.ingest_helpers import Publisher, running_consumer, wait_for
from tests.test_registry_api import COMMUNITY, assert_error, register_area

ELSEWHERE = "440305001001"  # 南山, another district


def now_ms() -> int:
    return int(time.time() * 1000)


def test_signals_by_kind_source_and_area_without_id_numbers(
    admin: httpx.Client, client_for: Any, database_url: str, mqtt_server: MqttUrl
) -> None:
    register_area(admin)
    register_area(admin, ELSEWHERE, "南山社区")
    devices = [("SD-S1", COMMUNITY, "smoke_sensor"), ("SD-S2", COMMUNITY, "smoke_sensor"),
               ("RD-S1", COMMUNITY, "id_reader"), ("SD-N1", ELSEWHERE, "smoke_sensor")]  # fmt: skip
    for device_id, area, kind in devices:
        created = admin.post("/api/v1/devices", json={"id": device_id, "type": kind, "area": area,
                                                      "site": "楼村花园", "building": "3栋"})  # fmt: skip
        assert created.status_code == 201, created.text
    number = random_id_number(random.Random(5), valid=False)
    with running_consumer(database_url, mqtt_server):
        pub = Publisher(mqtt_server)
        for seq, (device_id, area, event) in enumerate([
            ("SD-S1", COMMUNITY, "smoke_alarm"), ("SD-S2", COMMUNITY, "smoke_alarm"),
            ("SD-S1", COMMUNITY, "low_battery"), ("SD-N1", ELSEWHERE, "smoke_alarm"),
            ("SD-S1", COMMUNITY, "alarm_cleared"),
        ], start=1):  # fmt: skip
            pub.send(f"sb/{area}/{device_id}/event",
                     {"seq": seq, "ts": now_ms(), "type": event, "smoke": 3.0})  # fmt: skip
        pub.send(f"sb/{COMMUNITY}/RD-S1/event", {
            "seq": 9, "ts": now_ms(), "type": "id_read", "operator": "GW-0193",
            "card": {"id_number": number, "name": "王小明"}})  # fmt: skip
        pub.close()
        wait_for(database_url, "SELECT count(*) FROM signals WHERE source_type <> 'camera'"
                 " AND kind <> 'device_online'", lambda n: n >= 6)  # fmt: skip

    district = client_for("dispatcher", COMMUNITY[:6])
    alarms = district.get("/api/v1/signals?kind=smoke_alarm").json()["items"]
    assert [(s["source_id"], s["area"]) for s in alarms] == [
        ("SD-S2", COMMUNITY), ("SD-S1", COMMUNITY)]  # newest first, never 南山's  # fmt: skip
    from_s1 = district.get("/api/v1/signals?source_id=SD-S1").json()["items"]
    assert [s["kind"] for s in from_s1 if s["kind"] != "device_online"] == [
        "smoke_alarm_cleared", "battery_low", "smoke_alarm"]  # fmt: skip
    one = district.get(f"/api/v1/signals/{alarms[0]['id']}")
    assert one.status_code == 200 and one.json() == alarms[0]

    first = district.get("/api/v1/signals?source_type=smoke_sensor&limit=2").json()
    second = district.get(f"/api/v1/signals?source_type=smoke_sensor&limit=2"
                          f"&cursor={first['next']}").json()  # fmt: skip
    ids = [s["id"] for s in first["items"] + second["items"]]
    assert len(ids) == len(set(ids)) and ids == sorted(ids, reverse=True)

    nanshan = client_for("viewer", ELSEWHERE[:6])
    theirs = nanshan.get("/api/v1/signals").json()["items"]
    assert {s["source_id"] for s in theirs} == {"SD-N1"}
    assert_error(nanshan.get(f"/api/v1/signals/{alarms[0]['id']}"), 404, "not_found")

    read = district.get("/api/v1/signals?source_type=id_reader").json()["items"]
    assert [s["kind"] for s in read] == ["id_invalid"]
    viewer = client_for("viewer", COMMUNITY[:6])
    assert viewer.get("/api/v1/signals?source_type=id_reader").json()["items"] == []
    for client in (district, viewer, admin):
        text = client.get("/api/v1/signals?limit=500").text
        assert number not in text and number[:17] not in text and "王小明" not in text
    assert_error(district.get("/api/v1/signals?kind=Robert');DROP"), 422, "validation_error")
