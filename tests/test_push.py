"""CTWing and OneNET push samples end in readings and signals, through the real API."""

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

ONENET_TOKEN = "onenet-test-token"


@pytest.fixture
def devices(admin: httpx.Client) -> httpx.Client:
    register_area(admin)
    admin.post(
        "/api/v1/devices",
        json={"id": "NB-1", "type": "smoke_sensor", "area": COMMUNITY,
              "tags": {"imei": "868000000000001", "ctwing_id": "a1b2c3d4e5"}},
    )  # fmt: skip
    admin.post(
        "/api/v1/devices",
        json={
            "id": "NB-2",
            "type": "smoke_sensor",
            "area": COMMUNITY,
            "tags": {"onenet_id": "2016617"},
        },
    )
    return admin


def rows(database_url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(query).fetchall()  # type: ignore[arg-type]


def ctwing(kind: str, sn: int | None, **extra: Any) -> dict[str, Any]:
    body = {
        "messageType": kind, "deviceId": "a1b2c3d4e5", "IMEI": "868000000000001",
        "tenantId": "2000000", "productId": "15000000", "protocol": "lwm2m",
        "timestamp": int(time.time() * 1000), **extra,
    }  # fmt: skip
    if sn is not None:
        body["upPacketSN"] = sn
    return body


def test_ctwing_reports_become_readings_and_signals(
    devices: httpx.Client, database_url: str
) -> None:
    data = ctwing("dataReport", 101, payload={"serviceData": {
        "Alarm_Status": 0, "Smoke_Value": 0.07, "Temperature": 25, "Battery_Level": 76, "Signal_Strength": -92}})  # fmt: skip
    response = devices.post("/api/v1/push/ctwing", json=data)
    assert response.status_code == 200, response.text
    assert response.json() == {"result": "ok", "accepted": 1, "rejected": {}}
    # The same packet again (CTWing retries): deduplicated on upPacketSN.
    again = devices.post("/api/v1/push/ctwing", json=data).json()
    assert again == {"result": "ok", "accepted": 0, "rejected": {"duplicate": 1}}

    appdata = base64.b64encode(
        json.dumps({"Alarm_Status": 1, "Smoke_Value": 3.4, "Temperature": 57}).encode()
    ).decode()
    alarm = devices.post(
        "/api/v1/push/ctwing", json=ctwing("dataReport", 102, payload={"APPdata": appdata})
    )
    assert alarm.json()["accepted"] == 2  # telemetry and the alarm event
    test_button = ctwing("eventReport", 103, eventType=2, eventContent={"Alarm_Status": 6})
    assert devices.post("/api/v1/push/ctwing", json=test_button).json()["accepted"] == 1
    offline = ctwing("deviceOnlineOfflineReport", None, eventType=0)
    assert devices.post("/api/v1/push/ctwing", json=offline).json()["accepted"] == 1

    metrics = rows(
        database_url,
        "SELECT metric, value FROM readings WHERE device_id = 'NB-1' ORDER BY ts, metric",
    )
    assert (
        ("smoke", 0.07) in metrics
        and ("battery_pct", 76.0) in metrics
        and ("smoke", 3.4) in metrics
    )
    signals = rows(database_url, "SELECT kind, value FROM signals ORDER BY received_at")
    assert signals == [("smoke_alarm", 3.4), ("smoke_test", None)]
    state = rows(database_url, "SELECT online FROM device_state WHERE device_id = 'NB-1'")
    assert state == [(False,)]


def test_ctwing_bad_pushes_are_dead_letters(devices: httpx.Client, database_url: str) -> None:
    unknown = devices.post(
        "/api/v1/push/ctwing", json={**ctwing("dataReport", 1), "deviceId": "zzz", "IMEI": "0"}
    )
    assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "unknown_device"
    bad_code = ctwing("dataReport", 2, payload={"serviceData": {"Alarm_Status": 42}})
    response = devices.post("/api/v1/push/ctwing", json=bad_code)
    assert response.status_code == 422 and "code table" in response.json()["error"]["message"]
    missing = devices.post("/api/v1/push/ctwing", json={"messageType": "dataReport"})
    assert missing.status_code == 422 and missing.json()["error"]["code"] == "schema"
    reasons = rows(database_url, "SELECT reason, topic FROM dead_letters ORDER BY id")
    assert reasons == [
        ("unknown_device", "push/ctwing"),
        ("schema", "push/ctwing"),
        ("schema", "push/ctwing"),
    ]


def test_ctwing_needs_an_integrator_token(
    api_url: str, client_for: Any, devices: httpx.Client
) -> None:
    body = ctwing("dataReport", 1, payload={"serviceData": {"Smoke_Value": 0.1}})
    assert httpx.post(f"{api_url}/api/v1/push/ctwing", json=body).status_code == 401
    viewer = client_for("viewer", "")
    assert viewer.post("/api/v1/push/ctwing", json=body).status_code == 403
    integrator = client_for("integrator", "")
    token = integrator.headers["Authorization"].split()[1]
    by_query = httpx.post(f"{api_url}/api/v1/push/ctwing", params={"token": token}, json=body)
    assert by_query.status_code == 200, by_query.text


@pytest.fixture
def onenet_app(settings: Any, devices: httpx.Client) -> Any:
    settings.onenet_token = __import__("pydantic").SecretStr(ONENET_TOKEN)
    yield devices
    settings.onenet_token = None


def test_onenet_verification_and_data(onenet_app: httpx.Client, database_url: str) -> None:
    client = onenet_app
    sig = onenet.signature(ONENET_TOKEN, "abc123", "hello")
    check = client.get(
        "/api/v1/push/onenet", params={"msg": "hello", "nonce": "abc123", "signature": sig}
    )
    assert check.status_code == 200 and check.text == "hello"
    forged = client.get(
        "/api/v1/push/onenet", params={"msg": "hello", "nonce": "abc123", "signature": "AAAA"}
    )
    assert forged.status_code == 403

    at = int(time.time() * 1000)
    msg = [
        {"type": 1, "dev_id": 2016617, "ds_id": "Smoke_Value", "at": at, "value": 0.09},
        {"type": 1, "dev_id": 2016617, "ds_id": "Battery_Level", "at": at, "value": 64},
        {"type": 1, "dev_id": 2016617, "ds_id": "Alarm_Status", "at": at, "value": 5},
        {"type": 2, "dev_id": 2016617, "status": 1, "login_type": 7, "at": at},
    ]
    text = onenet.message_text(msg)
    envelope = {
        "msg": text,
        "nonce": "n1",
        "msg_signature": onenet.signature(ONENET_TOKEN, "n1", text),
    }
    response = client.post("/api/v1/push/onenet", json=envelope)
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 3  # status, telemetry, tamper event
    assert rows(database_url, "SELECT kind FROM signals") == [("tamper",)]
    assert sorted(rows(database_url, "SELECT metric FROM readings WHERE device_id = 'NB-2'")) == [
        ("battery_pct",),
        ("smoke",),
    ]
    tampered = {**envelope, "msg": text.replace("0.09", "0.01")}
    assert client.post("/api/v1/push/onenet", json=tampered).status_code == 403
