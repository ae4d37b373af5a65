"""Areas, devices, cameras and units through the real HTTP API on a real PostgreSQL."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import psycopg
import pytest

from devices.credentials import verify_password

COMMUNITY = "440311001002"


def register_area(client: httpx.Client, code: str = COMMUNITY, name: str = "楼村社区") -> None:
    response = client.post("/api/v1/areas", json={"code": code, "name": name})
    assert response.status_code == 201, response.text


def assert_error(response: httpx.Response, status: int, code: str, *needles: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    for needle in needles:
        assert needle in body["error"]["message"], body


# --- areas -------------------------------------------------------------------------------


def test_area_parent_and_level_come_from_the_code(admin: httpx.Client) -> None:
    register_area(admin)
    area = admin.get(f"/api/v1/areas/{COMMUNITY}").json()
    assert area["parent_code"] == "440311001"
    assert area["level"] == "community"
    register_area(admin, "4403", "深圳市")
    assert admin.get("/api/v1/areas/4403").json() == {
        **admin.get("/api/v1/areas/4403").json(),
        "parent_code": None,
        "level": "city",
    }
    children = admin.get("/api/v1/areas", params={"parent": "440311001"}).json()["items"]
    assert [a["code"] for a in children] == [COMMUNITY]


@pytest.mark.parametrize(
    ("code", "needle"),
    [
        ("44031", "4 (city), 6 (district), 9 (street) or 12 (community) digits"),
        ("4403110010021", "digits"),
        ("44031100100A", "digits"),
        ("990311", "province"),
        ("440300", "names its parent"),
        ("440311000", "names its parent"),
    ],
)
def test_invalid_area_codes_are_rejected(admin: httpx.Client, code: str, needle: str) -> None:
    response = admin.post("/api/v1/areas", json={"code": code, "name": "x"})
    assert_error(response, 422, "validation_error", "body.code", needle)


def test_duplicate_area_is_a_conflict(admin: httpx.Client) -> None:
    register_area(admin)
    assert_error(
        admin.post("/api/v1/areas", json={"code": COMMUNITY, "name": "again"}),
        409,
        "conflict",
        COMMUNITY,
    )


def test_area_in_use_cannot_be_deleted(admin: httpx.Client) -> None:
    register_area(admin, "440311001", "新安街道")
    register_area(admin)
    assert_error(admin.delete("/api/v1/areas/440311001"), 409, "conflict", "child areas")
    admin.post("/api/v1/devices", json={"id": "SD-1", "type": "smoke_sensor", "area": COMMUNITY})
    assert_error(admin.delete(f"/api/v1/areas/{COMMUNITY}"), 409, "conflict", "devices")
    assert admin.delete("/api/v1/devices/SD-1").status_code == 204
    assert admin.delete(f"/api/v1/areas/{COMMUNITY}").status_code == 204
    assert admin.get(f"/api/v1/areas/{COMMUNITY}").status_code == 404


# --- devices ---------------------------------------------------------------------------------


def test_device_registration_returns_credentials_once(
    admin: httpx.Client, database_url: str
) -> None:
    register_area(admin)
    body = {
        "id": "SD-0001",
        "type": "smoke_sensor",
        "area": COMMUNITY,
        "site": "楼村花园",
        "building": "3栋",
        "floor": "12",
        "lat": 22.78,
        "lon": 113.93,
        "tags": {"vendor": "acme", "nbiot": True},
    }
    response = admin.post("/api/v1/devices", json=body)
    assert response.status_code == 201, response.text
    created = response.json()
    creds = created.pop("credentials")
    assert creds["username"] == "SD-0001" and len(creds["password"]) >= 20
    assert {k: created[k] for k in body} == body
    fetched = admin.get("/api/v1/devices/SD-0001").json()
    assert "credentials" not in fetched and "password_hash" not in fetched

    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT password_hash FROM devices WHERE id = 'SD-0001'").fetchone()
        assert row is not None
        stored = row[0]
        dump = conn.execute("SELECT d::text FROM devices d").fetchone()
    assert creds["password"] not in str(dump)
    assert stored.startswith("$7$") and verify_password(creds["password"], stored)


def test_rotation_replaces_the_password(admin: httpx.Client, database_url: str) -> None:
    register_area(admin)
    first = admin.post(
        "/api/v1/devices", json={"id": "SD-2", "type": "smoke_sensor", "area": COMMUNITY}
    ).json()["credentials"]["password"]
    rotated = admin.post("/api/v1/devices/SD-2/credentials")
    assert rotated.status_code == 200
    second = rotated.json()["password"]
    assert second != first
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT password_hash FROM devices WHERE id = 'SD-2'").fetchone()
    assert row is not None
    assert verify_password(second, row[0]) and not verify_password(first, row[0])


def test_disable_and_move_a_device(admin: httpx.Client) -> None:
    register_area(admin)
    register_area(admin, "440311001003", "另一社区")
    admin.post("/api/v1/devices", json={"id": "R-1", "type": "id_reader", "area": COMMUNITY})
    patched = admin.patch("/api/v1/devices/R-1", json={"enabled": False, "area": "440311001003"})
    assert patched.status_code == 200, patched.text
    assert patched.json()["enabled"] is False and patched.json()["area"] == "440311001003"
    listed = admin.get("/api/v1/devices", params={"enabled": "false"}).json()["items"]
    assert [d["id"] for d in listed] == ["R-1"]
    assert admin.get("/api/v1/devices", params={"enabled": "true"}).json()["items"] == []


@pytest.mark.parametrize(
    ("body", "field", "needle"),
    [
        ({"type": "smoke_sensor", "area": COMMUNITY}, "body.id", "Field required"),
        ({"id": "bad id!", "type": "smoke_sensor", "area": COMMUNITY}, "body.id", "pattern"),
        ({"id": "X1", "type": "toaster", "area": COMMUNITY}, "body.type", "smoke_sensor"),
        ({"id": "X1", "type": "smoke_sensor", "area": "123"}, "body.area", "digits"),
        (
            {"id": "X1", "type": "smoke_sensor", "area": COMMUNITY, "lat": 91, "lon": 1},
            "body.lat",
            "",
        ),
        (
            {"id": "X1", "type": "smoke_sensor", "area": COMMUNITY, "lat": 22.5},
            "body",
            "lat and lon",
        ),
        (
            {"id": "X1", "type": "smoke_sensor", "area": COMMUNITY, "colour": "red"},
            "body.colour",
            "Extra",
        ),
        (
            {"id": "X1", "type": "smoke_sensor", "area": COMMUNITY, "tags": {"a": [1]}},
            "body.tags.a",
            "",
        ),
    ],
)
def test_bad_device_bodies_name_the_field(
    admin: httpx.Client, body: dict[str, object], field: str, needle: str
) -> None:
    register_area(admin)
    response = admin.post("/api/v1/devices", json=body)
    assert_error(response, 422, "validation_error", needle)
    assert field in [f["field"] for f in response.json()["error"]["fields"]]
    assert admin.get("/api/v1/devices").json()["items"] == []


def test_unregistered_area_and_duplicate_id(admin: httpx.Client) -> None:
    register_area(admin)
    assert_error(
        admin.post(
            "/api/v1/devices", json={"id": "X1", "type": "smoke_sensor", "area": "440311001009"}
        ),
        422,
        "validation_error",
        "not registered",
    )
    body = {"id": "X1", "type": "smoke_sensor", "area": COMMUNITY}
    assert admin.post("/api/v1/devices", json=body).status_code == 201
    assert_error(admin.post("/api/v1/devices", json=body), 409, "conflict", "X1")


def test_pagination_walks_every_device(admin: httpx.Client) -> None:
    register_area(admin)
    for i in range(7):
        admin.post(
            "/api/v1/devices", json={"id": f"D{i}", "type": "smoke_sensor", "area": COMMUNITY}
        )
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = admin.get("/api/v1/devices", params=params).json()
        seen += [d["id"] for d in page["items"]]
        cursor = page["next"]
        if not cursor:
            break
    assert seen == [f"D{i}" for i in range(7)]
    assert_error(admin.get("/api/v1/devices", params={"cursor": "%%%"}), 422, "validation_error")


# --- cameras -------------------------------------------------------------------------------

GATE = {"name": "gate-north", "kind": "restricted", "polygon": [[0.1, 0.2], [0.5, 0.2], [0.5, 0.9]]}


def test_camera_with_zones_hides_stream_password(admin: httpx.Client) -> None:
    register_area(admin)
    response = admin.post(
        "/api/v1/cameras",
        json={
            "id": "CAM-01",
            "area": COMMUNITY,
            "building": "3栋",
            "stream_url": "rtsp://admin:s3cret@10.0.0.5:554/ch1",
            "fps": 2,
            "zones": [GATE, {"name": "door", "kind": "line", "polygon": [[0.1, 0.5], [0.9, 0.5]]}],
        },
    )
    assert response.status_code == 201, response.text
    camera = response.json()
    assert camera["type"] == "camera" and camera["credentials"]["username"] == "CAM-01"
    assert camera["stream_url"] == "rtsp://admin:***@10.0.0.5:554/ch1"
    assert "s3cret" not in admin.get("/api/v1/cameras/CAM-01").text
    assert [z["name"] for z in camera["zones"]] == ["gate-north", "door"]

    replaced = admin.put("/api/v1/cameras/CAM-01/zones", json={"zones": [GATE]})
    assert replaced.status_code == 200
    assert len(replaced.json()["zones"]) == 1
    patched = admin.patch("/api/v1/cameras/CAM-01", json={"fps": 1, "building": "4栋"})
    assert patched.json()["fps"] == 1 and patched.json()["building"] == "4栋"
    assert admin.get("/api/v1/devices/CAM-01").json()["type"] == "camera"


def test_a_detect_substream_is_kept_hidden_and_can_be_cleared(admin: httpx.Client) -> None:
    register_area(admin)
    created = admin.post("/api/v1/cameras", json={
        "id": "CAM-SUB", "area": COMMUNITY, "stream_url": "rtsp://admin:s3cret@10.0.0.6/ch1",
        "detect_url": "rtsp://admin:s3cret@10.0.0.6/ch2",
    })  # fmt: skip
    assert created.status_code == 201, created.text
    assert created.json()["detect_url"] == "rtsp://admin:***@10.0.0.6/ch2"
    shown = admin.get("/api/v1/cameras/CAM-SUB")
    assert shown.json()["detect_url"] == "rtsp://admin:***@10.0.0.6/ch2"
    assert "s3cret" not in shown.text
    cleared = admin.patch("/api/v1/cameras/CAM-SUB", json={"detect_url": None})
    assert cleared.status_code == 200 and cleared.json()["detect_url"] is None
    empty = admin.patch("/api/v1/cameras/CAM-SUB", json={"detect_url": ""})
    assert empty.status_code == 422


@pytest.mark.parametrize(
    ("zone", "needle"),
    [
        (
            {"name": "z", "kind": "restricted", "polygon": [[0.1, 0.1], [0.2, 0.2]]},
            "at least 3 points",
        ),
        (
            {"name": "z", "kind": "crowd", "polygon": [[0.1, 0.1], [1.2, 0.2], [0.3, 0.5]]},
            "less than or equal to 1",
        ),
        (
            {"name": "z", "kind": "crowd", "polygon": [[-0.1, 0.1], [0.2, 0.2], [0.3, 0.5]]},
            "greater than or equal to 0",
        ),
        (
            {"name": "z", "kind": "line", "polygon": [[0.1, 0.1], [0.2, 0.2], [0.3, 0.5]]},
            "exactly 2 points",
        ),
        (
            {"name": "z", "kind": "fire_lane", "polygon": [[0, 0], [1, 1], [1, 0], [0, 1]]},
            "not simple",
        ),
        ({"name": "z", "kind": "fire_lane", "polygon": [[0, 0], [0.5, 0.5], [1, 1]]}, ""),
        ({"name": "z", "kind": "pool", "polygon": [[0, 0], [0, 1], [1, 1]]}, "restricted"),
        (
            {"name": "南门\u202e禁区", "kind": "restricted", "polygon": [[0, 0], [0, 1], [1, 1]]},
            "letters, digits",
        ),
        ({"name": "a/b", "kind": "restricted", "polygon": [[0, 0], [0, 1], [1, 1]]}, "'/'"),
        ({"name": " 南门", "kind": "restricted", "polygon": [[0, 0], [0, 1], [1, 1]]}, "spaces"),
        (
            {
                "name": "闸",
                "kind": "line",
                "polygon": [[0, 0], [1, 1]],
                "params": {"forward": "进", "backward": "进"},
            },
            "params: forward and backward need",
        ),
        (
            {
                "name": "闸",
                "kind": "line",
                "polygon": [[0, 0], [1, 1]],
                "params": {"forward": "进\n"},
            },
            "params.forward",
        ),
    ],
)
def test_bad_zones_are_rejected(admin: httpx.Client, zone: dict[str, object], needle: str) -> None:
    register_area(admin)
    response = admin.post(
        "/api/v1/cameras",
        json={"id": "CAM-X", "area": COMMUNITY, "stream_url": "rtsp://h/1", "zones": [zone]},
    )
    assert_error(response, 422, "validation_error", needle)
    assert admin.get("/api/v1/devices/CAM-X").status_code == 404


def test_zone_and_direction_names_in_chinese(admin: httpx.Client) -> None:
    register_area(admin)
    gate = {**GATE, "name": "南门禁区"}
    line = {"name": "南门 闸机", "kind": "line", "polygon": [[0.1, 0.5], [0.9, 0.5]],
            "params": {"forward": "进", "backward": "出", "margin": 0.2}}  # fmt: skip
    created = admin.post(
        "/api/v1/cameras",
        json={"id": "CAM-CN", "area": COMMUNITY, "stream_url": "rtsp://h/1", "zones": [gate, line]},
    )
    assert created.status_code == 201, created.text
    assert [z["name"] for z in created.json()["zones"]] == ["南门禁区", "南门 闸机"]
    assert created.json()["zones"][1]["params"]["forward"] == "进"
    replaced = admin.put("/api/v1/cameras/CAM-CN/zones", json={"zones": [
        {**line, "name": "北门", "params": {"forward": "出", "backward": "进"}},
        {**gate, "name": "电梯", "kind": "elevator"}]})  # fmt: skip
    assert replaced.status_code == 200, replaced.text
    zones = admin.get("/api/v1/cameras/CAM-CN").json()["zones"]
    assert [(z["name"], z["params"].get("forward")) for z in zones] == [
        ("北门", "出"),
        ("电梯", None),
    ]
    twice = admin.put("/api/v1/cameras/CAM-CN/zones", json={"zones": [gate, gate]})
    assert_error(twice, 422, "validation_error", "南门禁区", "used twice")


def test_the_documented_zones_body_is_taken(admin: httpx.Client) -> None:
    """docs/devices.md's zones example, as an integrator would paste it."""
    guide = (Path(__file__).parent.parent / "docs" / "devices.md").read_text(encoding="utf-8")
    example = re.search(r"### Camera zones.*?```json\n(.*?)```", guide, re.S)
    assert example, "the zones section has a json example"
    register_area(admin)
    assert (
        admin.post(
            "/api/v1/cameras", json={"id": "CAM-DOC", "area": COMMUNITY, "stream_url": "rtsp://h/1"}
        ).status_code
        == 201
    )
    replaced = admin.put("/api/v1/cameras/CAM-DOC/zones", content=example[1].encode(),
                         headers={"Content-Type": "application/json"})  # fmt: skip
    assert replaced.status_code == 200, replaced.text
    assert [z["name"] for z in replaced.json()["zones"]] == ["南门禁区", "南门 闸机", "消防通道"]


def test_zone_names_must_be_unique(admin: httpx.Client) -> None:
    register_area(admin)
    response = admin.post(
        "/api/v1/cameras",
        json={"id": "CAM-Y", "area": COMMUNITY, "stream_url": "rtsp://h/1", "zones": [GATE, GATE]},
    )
    assert_error(response, 422, "validation_error", "used twice")


def test_devices_endpoint_sends_cameras_elsewhere(admin: httpx.Client) -> None:
    register_area(admin)
    response = admin.post("/api/v1/devices", json={"id": "C", "type": "camera", "area": COMMUNITY})
    assert_error(response, 422, "validation_error", "/api/v1/cameras")


# --- units -----------------------------------------------------------------------------------


def test_units_crud_and_filters(admin: httpx.Client) -> None:
    register_area(admin)
    unit = {
        "id": "U-01",
        "name": "微型消防站",
        "kind": "fire",
        "area": COMMUNITY,
        "lat": 22.78,
        "lon": 113.93,
        "categories": ["fire", "rescue"],
        "on_duty": True,
    }
    created = admin.post("/api/v1/units", json=unit)
    assert created.status_code == 201, created.text
    assert admin.post("/api/v1/units", json=unit).status_code == 409
    assert [
        u["id"] for u in admin.get("/api/v1/units", params={"category": "fire"}).json()["items"]
    ] == ["U-01"]
    assert admin.get("/api/v1/units", params={"category": "medical"}).json()["items"] == []
    off = admin.patch("/api/v1/units/U-01", json={"on_duty": False})
    assert off.json()["on_duty"] is False
    assert admin.get("/api/v1/units", params={"on_duty": "true"}).json()["items"] == []
    bad = admin.post("/api/v1/units", json={**unit, "id": "U-02", "kind": "army"})
    assert_error(bad, 422, "validation_error", "grid_worker")


# --- HTTP edges ----------------------------------------------------------------------------


def test_errors_are_json_everywhere(admin: httpx.Client) -> None:
    assert_error(admin.get("/api/v1/nothing-here"), 404, "not_found")
    assert_error(admin.put("/api/v1/devices"), 405, "method_not_allowed")
    assert_error(admin.get("/api/v1/devices/nope"), 404, "not_found", "nope")
    malformed = admin.post(
        "/api/v1/areas", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert_error(malformed, 422, "validation_error", "JSON")
    not_object = admin.post("/api/v1/areas", json=[1, 2])
    assert_error(not_object, 422, "validation_error")


def test_oversize_bodies_are_413(admin: httpx.Client) -> None:
    register_area(admin)
    big = {"id": "X", "type": "smoke_sensor", "area": COMMUNITY, "site": "x" * 70_000}
    assert_error(admin.post("/api/v1/devices", json=big), 413, "payload_too_large")

    def chunks() -> object:
        # No Content-Length: the limit must hold for streamed bodies too.
        for _ in range(80):
            yield b"x" * 1024

    streamed = admin.post(
        "/api/v1/devices",
        content=chunks(),
        headers={"content-type": "application/json"},  # type: ignore[arg-type]
    )
    assert_error(streamed, 413, "payload_too_large")
    assert admin.get("/api/v1/devices").json()["items"] == []


def test_auth_failures(api_url: str, admin: httpx.Client) -> None:
    assert_error(httpx.get(f"{api_url}/api/v1/devices"), 401, "unauthorized", "missing")
    bad = httpx.get(f"{api_url}/api/v1/devices", headers={"Authorization": "Bearer sb_nope"})
    assert_error(bad, 401, "unauthorized", "unknown")
    assert bad.headers["www-authenticate"] == "Bearer"
    issued = admin.post("/api/v1/tokens", json={"name": "v", "role": "viewer"}).json()
    headers = {"Authorization": f"Bearer {issued['token']}"}
    assert httpx.get(f"{api_url}/api/v1/devices", headers=headers).status_code == 200
    assert admin.delete(f"/api/v1/tokens/{issued['id']}").status_code == 204
    assert_error(httpx.get(f"{api_url}/api/v1/devices", headers=headers), 401, "unauthorized")


def test_health_metrics_and_docs(api_url: str, admin: httpx.Client) -> None:
    assert httpx.get(f"{api_url}/healthz").json() == {"status": "ok", "process": "api"}
    ready = httpx.get(f"{api_url}/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["database"] == "ok" and ready.json()["components"]["live-stream"]["up"]
    admin.get("/api/v1/devices")
    metrics = httpx.get(f"{api_url}/metrics").text
    assert 'sb_http_requests_total{method="GET",route="/api/v1/devices",status="200"}' in metrics
    assert httpx.get(f"{api_url}/docs").status_code == 200
    paths = httpx.get(f"{api_url}/openapi.json").json()["paths"]
    assert "/api/v1/devices/import" in paths and "/api/v1/cameras/{camera_id}/zones" in paths


def test_readyz_answers_503_never_500_when_a_later_query_fails(
    api_url: str, database_url: str
) -> None:
    """/readyz reads the vision state after proving the database answers: a query failing
    there (the database lost between the two, here a table gone) is a 503 saying why."""
    assert httpx.get(f"{api_url}/readyz").status_code == 200
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE vision_workers RENAME TO vision_workers_away")
        try:
            ready = httpx.get(f"{api_url}/readyz")
        finally:
            conn.execute("ALTER TABLE vision_workers_away RENAME TO vision_workers")
    assert ready.status_code == 503, ready.text
    assert ready.json()["database"] != "ok" and "vision" not in ready.json()
    assert httpx.get(f"{api_url}/readyz").status_code == 200
