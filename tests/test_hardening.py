"""Smaller defects a hostile pass found, each as a class: uploads that reject everything, numbers
that are not numbers, booleans that are words, scopes that cover several areas, streams that
outlive their token, and an OpenAPI document that tells the truth."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.conftest import ADMIN_TOKEN, issue
from tests.eventually import eventually
from tests.ingest_helpers import Publisher, running_consumer, wait_for
from tests.test_registry_api import COMMUNITY, register_area
from tests.test_stream import next_event, ws_url


def test_a_watch_list_upload_that_rejects_every_number(admin: httpx.Client) -> None:
    created = admin.post("/api/v1/watchlists", json={"name": "w", "label": "在逃人员"})
    assert created.status_code == 201, created.text
    bad = admin.post(f"/api/v1/watchlists/{created.json()['id']}/entries",
                     json={"id_numbers": ["11010519491231002Y", "110105194912310021", "x"]})  # fmt: skip
    assert bad.status_code == 200, bad.text
    report = bad.json()
    assert report["added"] == 0 and [p["index"] for p in report["rejected"]] == [0, 1, 2]
    assert "1101" not in bad.text  # rejected numbers are named by position, never echoed


@pytest.mark.parametrize("role", ["admin", "integrator", "viewer"])
def test_token_scopes_are_whole_areas(admin: httpx.Client, role: str) -> None:
    for bad in ("44031", "4403110", "44031100100", "9", "00031100"):
        refused = admin.post("/api/v1/tokens", json={"name": "t", "role": role, "area_prefix": bad})
        assert refused.status_code == 422, (bad, refused.text)
    for good in ("", "4403", "440311", "440311001", COMMUNITY):
        assert admin.post("/api/v1/tokens", json={"name": "t", "role": role,
                                                  "area_prefix": good}).status_code == 201  # fmt: skip


def test_numbers_that_are_not_numbers_and_words_that_are_not_booleans(
    admin: httpx.Client, database_url: str, mqtt_server: Any
) -> None:
    register_area(admin)
    admin.post("/api/v1/devices", json={"id": "SD-H", "type": "smoke_sensor", "area": COMMUNITY})
    topic = f"sb/{COMMUNITY}/SD-H"
    now = int(time.time() * 1000)
    bad = [
        (f"{topic}/telemetry", b'{"seq": 1, "ts": %d, "smoke": Infinity}' % now),
        (f"{topic}/telemetry", b'{"seq": 2, "ts": %d, "temp_c": 1e309}' % now),
        (f"{topic}/telemetry", b'{"seq": 3, "ts": %d, "rssi_dbm": NaN}' % now),
        (f"{topic}/telemetry", b'{"seq": 4, "ts": %d, "battery_pct": -Infinity}' % now),
        (f"{topic}/status", b'{"online": "yes"}'),
        (f"{topic}/status", b'{"online": 1}'),
    ]
    with running_consumer(database_url, mqtt_server):
        pub = Publisher(mqtt_server)
        for where, body in bad:
            pub.send(where, body)
        pub.send(f"{topic}/telemetry", {"seq": 5, "ts": now, "smoke": 0.05})
        pub.close()
        wait_for(database_url, "SELECT count(*) FROM dead_letters", lambda n: n == len(bad))
        wait_for(database_url, "SELECT count(*) FROM readings", lambda n: n == 1)
    import psycopg

    with psycopg.connect(database_url) as conn:
        reasons = conn.execute("SELECT reason FROM dead_letters").fetchall()
        state = conn.execute("SELECT online FROM device_state WHERE device_id = 'SD-H'").fetchone()
    assert {r[0] for r in reasons} == {"schema"}
    assert state == (True,)  # set by the good telemetry, not by "yes"


def test_a_revoked_token_loses_its_live_stream(admin: httpx.Client, api_url: str) -> None:
    created = admin.post("/api/v1/tokens", json={"name": "desk", "role": "viewer"}).json()
    with connect(ws_url(api_url, created["token"])) as ws:
        next_event(ws, "stream.ready")
        assert admin.delete(f"/api/v1/tokens/{created['id']}").status_code == 204
        assert next_event(ws, "stream.revoked", timeout=10)["type"] == "stream.revoked"
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    again = httpx.get(
        f"{api_url}/api/v1/areas", headers={"Authorization": f"Bearer {created['token']}"}
    )
    assert again.status_code == 401


def test_an_expired_token_is_refused(admin: httpx.Client, api_url: str) -> None:
    soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    created = admin.post("/api/v1/tokens", json={"name": "shift", "role": "viewer",
                                                 "expires_at": soon}).json()  # fmt: skip
    headers = {"Authorization": f"Bearer {created['token']}"}
    assert httpx.get(f"{api_url}/api/v1/areas", headers=headers).status_code == 200
    eventually(lambda: httpx.get(f"{api_url}/api/v1/areas", headers=headers).status_code,
               lambda status: status == 401, what="the expired token refused")  # fmt: skip


def test_the_openapi_document_is_valid_and_tells_of_errors(api_url: str) -> None:
    spec = httpx.get(f"{api_url}/openapi.json").json()
    validate(spec)
    error = {"$ref": "#/components/schemas/Error"}
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            assert responses["422"]["content"]["application/json"]["schema"] == error, path
            if operation.get("security"):
                assert {"401", "429"} <= set(responses), (method, path)
            if "{" in path:
                assert "404" in responses, (method, path)
    rules = spec["paths"]["/api/v1/rules"]["post"]
    assert rules["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Rule"
    }
    assert "409" in rules["responses"] and "415" in rules["responses"]
    device = spec["components"]["schemas"]["DeviceIn"]
    assert device["dependentRequired"] == {"lat": ["lon"], "lon": ["lat"]}
    assert device["properties"]["area"]["pattern"]
    assert "HTTPValidationError" not in spec["components"]["schemas"]


def test_error_bodies_have_one_shape(admin: httpx.Client, api_url: str) -> None:
    answers = [
        admin.get("/api/v1/devices/none-here"),  # 404
        admin.post("/api/v1/areas", json={"code": "x"}),  # 422 from validation
        admin.post("/api/v1/areas", content=b"{", headers={"Content-Type": "application/json"}),
        admin.post(
            "/api/v1/rules", content=b"id: x", headers={"Content-Type": "text/plain"}
        ),  # 415
        admin.request("PUT", "/api/v1/areas"),  # 405
        httpx.get(f"{api_url}/api/v1/areas"),  # 401
        httpx.get(
            f"{api_url}/api/v1/tokens",
            headers={"Authorization": f"Bearer {issue(api_url, 'viewer', '')}"},
        ),  # 403
    ]
    for answer in answers:
        body = answer.json()["error"]
        assert set(body) >= {"code", "message", "fields"} and isinstance(body["fields"], list), body
    assert [a.status_code for a in answers] == [404, 422, 422, 415, 405, 401, 403]
    assert answers[4].headers["Allow"] == "GET, POST"
    assert json.loads(answers[0].text)["error"]["code"] == "not_found"
    assert ADMIN_TOKEN not in answers[0].text


def test_a_json_body_must_say_it_is_json(admin: httpx.Client) -> None:
    """No Content-Type, or another one, on an operation that takes JSON: 415, whatever the
    body holds; JSON types with parameters or a +json suffix are JSON."""
    register_area(admin)
    body = json.dumps({"id": "U-1", "name": "消防站", "area": COMMUNITY, "kind": "fire"})
    for content_type in (None, "text/plain", "application/x-www-form-urlencoded"):
        headers = {"Content-Type": content_type} if content_type else {}
        request = admin.build_request("POST", "/api/v1/units", content=body, headers=headers)
        request.headers.pop("Content-Type", None)  # httpx sets none for raw content
        if content_type:
            request.headers["Content-Type"] = content_type
        answer = admin.send(request)
        assert answer.status_code == 415, (content_type, answer.text)
        error = answer.json()["error"]
        assert error["code"] == "unsupported_media_type" and error["fields"][0]["field"] == (
            "content-type"
        )
        assert (content_type or "none") in error["message"]
    ok = admin.post("/api/v1/units", content=body,
                    headers={"Content-Type": "application/json; charset=utf-8"})  # fmt: skip
    assert ok.status_code != 415, ok.text
    # Operations that take other types keep their own: CSV here, YAML for rules.
    csv = admin.post("/api/v1/devices/import", content=b"id,type,area\n",
                     headers={"Content-Type": "text/csv"})  # fmt: skip
    assert csv.status_code == 200, csv.text
    # A body-less action is not refused for saying nothing about its type.
    assert admin.post("/api/v1/units", content=b"").status_code == 422
