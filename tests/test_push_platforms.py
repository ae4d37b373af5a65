"""Carrier pushes as the platforms send them: CTWing LwM2M reports without packet numbers,
transparent APPdata, event reports with vendor fields, OneNET's legacy and Studio envelopes.
A push is answered 200 only when something was stored; platform identities belong to one
device and are resolved only within the pushing token's area."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import psycopg
import pytest

from ingest.carriers import onenet
from tests.test_registry_api import COMMUNITY, register_area

OTHER = "440312001001"  # a community of another district
TOKEN = "onenet-platform-token"


def now_ms() -> int:
    return int(time.time() * 1000)


def rows(database_url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(query).fetchall()  # type: ignore[arg-type]


@pytest.fixture
def district(admin: httpx.Client, client_for: Any) -> httpx.Client:
    """Two districts; an NB-IoT smoke sensor on each platform in the first; and the first
    district's integrator, who pushes."""
    register_area(admin)
    register_area(admin, OTHER, "别区社区")
    for device in (
        {"id": "NB-CT", "tags": {"ctwing_id": "c7e1f00d", "imei": "868000000000011"}},
        {"id": "NB-ON", "tags": {"onenet_id": "smoke-0017"}},
    ):
        created = admin.post("/api/v1/devices", json={"type": "smoke_sensor", "area": COMMUNITY,
                                                      "building": "3栋", **device})  # fmt: skip
        assert created.status_code == 201, created.text
    integrator: httpx.Client = client_for("integrator", COMMUNITY[:6])
    return integrator


def lwm2m(message_type: str, **fields: Any) -> dict[str, Any]:
    """A CTWing push as an LwM2M device's report arrives: no packet numbers (-1)."""
    return {
        "upPacketSN": -1, "upDataSN": -1, "topic": "v1/up/ad", "timestamp": now_ms(),
        "tenantId": "2000012345", "serviceId": "", "protocol": "lwm2m", "productId": "15012345",
        "messageType": message_type, "deviceType": "", "deviceId": "c7e1f00d",
        "assocAssetId": "", "IMSI": "460110000000011", "IMEI": "868000000000011", **fields,
    }  # fmt: skip


def dead_letter_count(api: httpx.Client) -> float:
    text = api.get("/metrics").text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("sb_ingest_dead_letters_total{"))  # fmt: skip


def test_lwm2m_reports_without_packet_numbers_land(
    district: httpx.Client, database_url: str
) -> None:
    alarm = lwm2m("dataReport", payload={"serviceData": {
        "smoke_state": 1, "smoke_value": 3.6, "battery_value": 81, "rsrp": -97, "temperature": 52}})  # fmt: skip
    first = district.post("/api/v1/push/ctwing", json=alarm)
    assert first.status_code == 200, first.text
    assert first.json()["accepted"] == 2  # the readings and the alarm
    retried = district.post("/api/v1/push/ctwing", json=alarm)  # CTWing retries the same push
    assert retried.status_code == 200 and retried.json()["accepted"] == 0
    assert rows(database_url, "SELECT kind, value FROM signals") == [("smoke_alarm", 3.6)]
    readings = dict(
        rows(database_url, "SELECT metric, value FROM readings WHERE device_id = 'NB-CT'")
    )
    assert readings == {"smoke": 3.6, "battery_pct": 81.0, "rssi_dbm": -97.0, "temp_c": 52.0}


def test_transparent_event_and_status_reports(district: httpx.Client, database_url: str) -> None:
    appdata = base64.b64encode(json.dumps({"Alarm_Status": "1", "Smoke_Value": 2.9}).encode())
    transparent = lwm2m("dataReport", protocol="tcp", payload={"APPdata": appdata.decode()})
    assert district.post("/api/v1/push/ctwing", json=transparent).json()["accepted"] == 2
    battery = lwm2m("eventReport", eventType=1, serviceId="1001",
                    eventContent={"battery_voltage": 2.95, "battery_state": 1})  # fmt: skip
    answered = district.post("/api/v1/push/ctwing", json=battery)
    assert answered.status_code == 200 and answered.json()["accepted"] == 2, answered.text
    offline = lwm2m("deviceOnlineOfflineReport", eventType=0)
    assert district.post("/api/v1/push/ctwing", json=offline).status_code == 200
    kinds = [r[0] for r in rows(database_url, "SELECT kind FROM signals ORDER BY id")]
    assert kinds == ["smoke_alarm", "battery_low"]
    volts = rows(database_url, "SELECT value FROM readings WHERE metric = 'battery_v'")
    assert volts == [(2.95,)]
    assert rows(database_url, "SELECT online FROM device_state WHERE device_id = 'NB-CT'") == [
        (False,)
    ]


@pytest.mark.parametrize(
    ("push", "reason"),
    [
        (lwm2m("dataReport", payload={"serviceData": {"vendor_blob": "0x1f2e"}}), "schema"),
        (lwm2m("dataReport", payload={"serviceData": {"Alarm_Status": 9}}), "schema"),
        (lwm2m("dataReport", payload={"serviceData": {"smoke_value": "high"}}), "schema"),
        (lwm2m("dataReport", payload={"APPdata": "not base64!"}), "schema"),
        (lwm2m("eventReport", eventType=1), "schema"),
        (lwm2m("heartbeatReport"), "schema"),
        ({**lwm2m("dataReport"), "deviceId": "nobody", "IMEI": "0"}, "unknown_device"),
        ({"messageType": "dataReport"}, "schema"),
    ],
)
def test_nothing_stored_is_never_ok(
    district: httpx.Client, database_url: str, push: dict[str, Any], reason: str
) -> None:
    before = dead_letter_count(district)
    answered = district.post("/api/v1/push/ctwing", json=push)
    assert answered.status_code == 422, answered.text
    assert answered.json()["error"]["code"] == reason
    assert rows(database_url, "SELECT count(*) FROM uplinks") == [(0,)]
    assert rows(database_url, "SELECT reason, topic FROM dead_letters") == [(reason, "push/ctwing")]
    assert dead_letter_count(district) == before + 1


def test_a_district_cannot_capture_another_districts_device(
    district: httpx.Client, client_for: Any, database_url: str
) -> None:
    other = client_for("integrator", OTHER[:6])
    taken = other.post("/api/v1/devices", json={"id": "NB-MINE", "type": "smoke_sensor",
                                                "area": OTHER, "tags": {"ctwing_id": "c7e1f00d"}})  # fmt: skip
    assert taken.status_code == 409
    message = taken.json()["error"]["message"]
    assert "NB-CT" not in message and COMMUNITY not in message  # nothing said of the other one
    same_imei = other.post("/api/v1/devices", json={"id": "NB-MINE", "type": "smoke_sensor",
                                                    "area": OTHER, "tags": {"imei": "868000000000011"}})  # fmt: skip
    assert same_imei.status_code == 409
    # Its pushes for the first district's device go nowhere and learn nothing.
    pushed = other.post("/api/v1/push/ctwing", json=lwm2m("dataReport", payload={
        "serviceData": {"smoke_state": 1}}))  # fmt: skip
    assert pushed.status_code == 422 and pushed.json()["error"]["code"] == "unknown_device"
    assert "NB-CT" not in pushed.text
    assert rows(database_url, "SELECT count(*) FROM uplinks") == [(0,)]
    # A CSV import cannot take it either.
    csv = "id,type,area,site,building,floor,lat,lon,tags\nNB-CSV,smoke_sensor,{},,,,,,ctwing_id=c7e1f00d\n"
    imported = other.post("/api/v1/devices/import", content=csv.format(OTHER).encode(),
                          headers={"Content-Type": "text/csv"})  # fmt: skip
    assert imported.status_code == 200 and imported.json()["created"] == 0
    assert imported.json()["errors"][0]["field"] == "tags.ctwing_id"


@pytest.fixture
def onenet_push(settings: Any, district: httpx.Client) -> Any:
    settings.onenet_token = __import__("pydantic").SecretStr(TOKEN)

    def push(msg: Any, *, legacy: bool = False) -> httpx.Response:
        text = onenet.message_text(msg)
        key = "msg_signature" if legacy else "signature"
        body = {"msg": text, "nonce": "f3Kd8s", key: onenet.signature(TOKEN, "f3Kd8s", text),
                "time": now_ms(), "id": "5b4c0ac3e2"}  # fmt: skip
        return district.post("/api/v1/push/onenet", json=body)

    yield push
    settings.onenet_token = None


def test_onenet_studio_notify_and_lifecycle(onenet_push: Any, database_url: str) -> None:
    at = now_ms()
    device = {"productId": "C6z4Zk012B", "deviceId": 1343759, "deviceName": "smoke-0017"}
    online = onenet_push(
        {**device, "messageType": "lifeCycle", "data": {"status": "online", "time": at}}
    )
    assert online.status_code == 200, online.text
    props = onenet_push({**device, "messageType": "notify", "notifyType": "property", "data": {
        "id": "1631522002438", "version": "1.0", "params": {
            "Smoke_Value": {"time": at, "value": 0.08}, "Battery_Level": {"time": at, "value": 73},
            "Alarm_Status": {"time": at, "value": 0}}}})  # fmt: skip
    assert props.status_code == 200 and props.json()["accepted"] == 1, props.text
    event = onenet_push({**device, "messageType": "notify", "notifyType": "event", "data": {
        "id": "1631522157984", "version": "1.0", "params": {
            "smoke_alarm": {"eventType": "alert", "time": at + 1, "value": {"Smoke_Value": 3.3}}}}})  # fmt: skip
    assert event.status_code == 200 and event.json()["accepted"] == 2, event.text
    assert onenet_push({**device, "messageType": "notify", "notifyType": "event", "data": {
        "id": "1631522157984", "params": {"smoke_alarm": {"time": at + 1, "value": {}}}}}).json()[
        "accepted"] == 0  # the same message id again: stored before  # fmt: skip
    assert rows(database_url, "SELECT kind, value FROM signals") == [("smoke_alarm", 3.3)]


def test_onenet_legacy_points_and_refusals(onenet_push: Any, database_url: str) -> None:
    at = now_ms()
    legacy = [
        {"type": 1, "dev_id": "smoke-0017", "ds_id": "Smoke_Value", "at": at, "value": 0.09},
        {"type": 1, "dev_id": "smoke-0017", "ds_id": "Alarm_Status", "at": at, "value": 5},
        {"type": 2, "dev_id": "smoke-0017", "status": 0, "login_type": 10, "at": at},
    ]
    answered = onenet_push(legacy, legacy=True)
    assert answered.status_code == 200 and answered.json()["accepted"] == 3, answered.text
    assert rows(database_url, "SELECT kind FROM signals") == [("tamper",)]
    for msg in ([{"type": 9, "dev_id": "smoke-0017", "at": at}], {"messageType": "notify"}, [],
                [{"type": 1, "dev_id": "nobody", "ds_id": "Smoke_Value", "at": at, "value": 1}]):  # fmt: skip
        refused = onenet_push(msg)
        assert refused.status_code == 422, (msg, refused.text)


# --- values of the wrong JSON type ------------------------------------------------------------


@pytest.mark.parametrize(
    "service_data",
    [
        {"Alarm_Status": "1"},  # the object model's Alarm_Status is an integer
        {"Alarm_Status": True},
        {"smoke_value": "0.5"},
        {"Battery_Level": True},
        {"battery_value": False, "smoke_state": 0},
        {"rsrp": "-97"},
        {"smoke_state": "1"},
        {"Temperature": None, "smoke_state": "alarm"},
    ],
)
def test_typed_values_of_the_wrong_type_are_schema_dead_letters(
    district: httpx.Client, database_url: str, service_data: dict[str, Any]
) -> None:
    """CTWing's object model types each property: `serviceData` and `eventContent` values are
    JSON numbers there, so text or a boolean for a number is refused, counted, and nothing of
    it stored; the next good report lands."""
    before = dead_letter_count(district)
    bad = district.post("/api/v1/push/ctwing",
                        json=lwm2m("dataReport", payload={"serviceData": service_data}))  # fmt: skip
    assert bad.status_code == 422, bad.text
    assert bad.json()["error"]["code"] == "schema"
    event = district.post("/api/v1/push/ctwing",
                          json=lwm2m("eventReport", eventType=1, eventContent=service_data))  # fmt: skip
    assert event.status_code == 422 and event.json()["error"]["code"] == "schema", event.text
    assert dead_letter_count(district) == before + 2
    assert rows(database_url, "SELECT reason FROM dead_letters") == [("schema",)] * 2
    good = district.post("/api/v1/push/ctwing", json=lwm2m("dataReport", payload={
        "serviceData": {"Alarm_Status": 1, "smoke_value": 0.5, "Battery_Level": 80}}))  # fmt: skip
    assert good.status_code == 200 and good.json()["accepted"] == 2, good.text
    assert rows(database_url, "SELECT count(*) FROM uplinks") == [(2,)]
    assert rows(database_url, "SELECT kind FROM signals") == [("smoke_alarm",)]


def test_envelope_numbers_are_json_numbers(district: httpx.Client, database_url: str) -> None:
    for envelope in ({"timestamp": str(now_ms())}, {"timestamp": True},
                     {"messageType": "deviceOnlineOfflineReport", "eventType": True},
                     {"messageType": "deviceOnlineOfflineReport", "eventType": "1"}):  # fmt: skip
        push = {**lwm2m("dataReport", payload={"serviceData": {"smoke_state": 1}}), **envelope}
        answered = district.post("/api/v1/push/ctwing", json=push)
        assert answered.status_code == 422, (envelope, answered.text)
        assert answered.json()["error"]["code"] == "schema"
    assert rows(database_url, "SELECT count(*) FROM uplinks") == [(0,)]


def test_onenet_studio_is_typed_and_legacy_points_are_text(
    onenet_push: Any, database_url: str
) -> None:
    """Studio's thing model types its params (text for a number is refused); legacy data
    points carry the device's own values, digit text included. In one push, each report that
    cannot be read is a dead letter and every other lands."""
    at = now_ms()
    device = {"productId": "C6z4Zk012B", "deviceId": 1343759, "deviceName": "smoke-0017"}
    for params in ({"Battery_Level": {"time": at, "value": True}},
                   {"Smoke_Value": {"time": at, "value": "0.5"}},
                   {"Alarm_Status": {"time": at, "value": "1"}}):  # fmt: skip
        typed = onenet_push({**device, "messageType": "notify", "notifyType": "property",
                             "data": {"id": "1", "params": params}})  # fmt: skip
        assert typed.status_code == 422 and typed.json()["error"]["code"] == "schema", params
    legacy = [
        {"type": 1, "dev_id": "smoke-0017", "ds_id": "Battery_Level", "at": at, "value": True},
        {"type": 1, "dev_id": "smoke-0017", "ds_id": "Smoke_Value", "at": at + 1, "value": "0.5"},
        {"type": 1, "dev_id": "smoke-0017", "ds_id": "Alarm_Status", "at": at + 2, "value": "1"},
        {"type": 1, "dev_id": "smoke-0017", "ds_id": "Smoke_Value", "at": at + 3, "value": "x"},
    ]
    answered = onenet_push(legacy, legacy=True)
    assert answered.status_code == 200, answered.text
    assert answered.json()["accepted"] == 2 and answered.json()["rejected"] == {"schema": 2}
    assert rows(database_url, "SELECT metric, value FROM readings") == [("smoke", 0.5)]
    assert rows(database_url, "SELECT kind FROM signals") == [("smoke_alarm",)]
    reasons = rows(database_url, "SELECT reason, count(*) FROM dead_letters GROUP BY 1")
    assert reasons == [("schema", 5)]
    online = onenet_push([{"type": 2, "dev_id": "smoke-0017", "status": True, "at": at}],
                         legacy=True)  # fmt: skip
    assert online.status_code == 422, online.text
