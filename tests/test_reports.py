"""Incidents people report: a resident through a community's intake key, with a photo, all
the way through the loop to their rating by receipt; a grid worker in their grid; photos
checked by their bytes and stripped of EXIF; a wrong key refused and a flood limited."""

from __future__ import annotations

import io
import re
from typing import Any

import httpx
import pytest
from PIL import Image

from hub.settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.services import api_server
from tests.test_registry_api import COMMUNITY, assert_error, register_area

OTHER_COMMUNITY = "440311001003"
GPS_TAG = 0x8825


def photo(kind: str = "JPEG", size: tuple[int, int] = (64, 48), *, gps: bool = True) -> bytes:
    """A real picture; a JPEG carries EXIF with a GPS position and a camera serial."""
    image = Image.new("RGB", size, (200, 60, 30))
    out = io.BytesIO()
    if kind == "JPEG" and gps:
        exif = Image.Exif()
        exif[0xA431] = "SERIAL-12345"  # BodySerialNumber
        exif[0x0110] = "Phone X"  # Model
        exif.get_ifd(GPS_TAG)[2] = (22.0, 46.0, 48.0)  # GPSLatitude
        image.save(out, kind, exif=exif)
    else:
        image.save(out, kind)
    return out.getvalue()


@pytest.fixture
def community(admin: httpx.Client) -> httpx.Client:
    register_area(admin)
    register_area(admin, OTHER_COMMUNITY, "新桥社区")
    response = admin.post("/api/v1/units", json={
        "id": "GW-7", "name": "网格员 7", "kind": "grid_worker", "area": COMMUNITY,
        "categories": ["public_safety", "fire_safety"], "lat": 22.781, "lon": 113.931})  # fmt: skip
    assert response.status_code == 201, response.text
    return admin


def intake_key(admin: httpx.Client, area: str = COMMUNITY) -> str:
    response = admin.post("/api/v1/intake-keys", json={"area": area, "name": "3栋 公告栏"})
    assert response.status_code == 201, response.text
    key: str = response.json()["key"]
    return key


def grid_worker(api_url: str, unit_id: str | None = "GW-7", area: str = COMMUNITY) -> httpx.Client:
    body: dict[str, Any] = {"name": f"李网格-{unit_id}", "role": "grid_worker",
                            "area_prefix": area, "unit_id": unit_id}  # fmt: skip
    response = httpx.post(f"{api_url}/api/v1/tokens", json=body,
                          headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})  # fmt: skip
    assert response.status_code == 201, response.text
    token = response.json()["token"]
    return httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {token}"})


def act(client: httpx.Client, incident_id: int, action: str, **fields: Any) -> dict[str, Any]:
    response = client.post(f"/api/v1/incidents/{incident_id}/actions",
                           json={"action": action, **fields})  # fmt: skip
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_residents_report_with_a_photo_runs_the_loop_to_their_rating(
    community: httpx.Client, api_url: str, client_for: Any
) -> None:
    key = intake_key(community)
    resident = httpx.Client(base_url=api_url)  # no token: the key says which community
    filed = resident.post("/api/v1/public/reports", headers={"X-Intake-Key": key}, json={
        "category": "fire_safety", "title": "楼道堆放杂物堵住消防通道", "building": "3栋",
        "floor": "2", "note": "二楼楼梯口"})  # fmt: skip
    assert filed.status_code == 201, filed.text
    receipt = filed.json()["receipt"]
    assert filed.json()["report"]["status"] == "reported"
    shot = resident.post(f"/api/v1/public/reports/{receipt}/attachments",
                         files={"file": ("IMG_0001.JPG", photo(), "image/jpeg")})  # fmt: skip
    assert shot.status_code == 201, shot.text

    dispatcher = client_for("dispatcher", COMMUNITY[:6])
    [incident] = dispatcher.get("/api/v1/incidents?source=public").json()["items"]
    assert (incident["area"], incident["source"], incident["status"], incident["building"],
            incident["floor"]) == (COMMUNITY, "public", "reported", "3栋", "2")  # fmt: skip
    assert incident["accept_by"] is not None  # the same deadlines as a rule's incident
    [attachment] = dispatcher.get(f"/api/v1/incidents/{incident['id']}/attachments").json()
    stored = dispatcher.get(f"/api/v1/attachments/{attachment['id']}")
    assert stored.headers["content-type"] == "image/jpeg"
    picture = Image.open(io.BytesIO(stored.content))
    assert picture.size == (64, 48) and dict(picture.getexif()) == {}
    assert b"SERIAL-12345" not in stored.content and b"Exif" not in stored.content

    worker = grid_worker(api_url)
    act(dispatcher, incident["id"], "accept")
    act(dispatcher, incident["id"], "dispatch", unit_id="GW-7")
    act(worker, incident["id"], "start")
    fixed = worker.post(f"/api/v1/incidents/{incident['id']}/attachments",
                        files={"file": ("after.png", photo("PNG"), "image/png")})  # fmt: skip
    assert fixed.status_code == 201, fixed.text
    act(worker, incident["id"], "resolve", note="杂物已清理")
    act(dispatcher, incident["id"], "verify")
    act(dispatcher, incident["id"], "close", reason="resolved")

    seen = resident.get(f"/api/v1/public/reports/{receipt.lower()}").json()
    assert (seen["status"], seen["close_reason"], seen["can_rate"]) == ("closed", "resolved", True)
    assert "note" not in seen and "reported_by" not in seen
    rated = resident.post(f"/api/v1/public/reports/{receipt}/rating",
                          json={"rating": 4, "comment": "处理很快"})  # fmt: skip
    assert rated.status_code == 200, rated.text
    assert (rated.json()["rating"], rated.json()["can_rate"]) == (4, False)
    assert_error(resident.post(f"/api/v1/public/reports/{receipt}/rating", json={"rating": 1}),
                 409, "conflict")  # fmt: skip
    assert_error(resident.post(f"/api/v1/public/reports/{receipt}/attachments",
                               files={"file": ("x.jpg", photo(), "image/jpeg")}),
                 422, "validation_error", "closed")  # fmt: skip
    assert dispatcher.get(f"/api/v1/incidents/{incident['id']}").json()["rating"] == 4

    by_source = dispatcher.get("/api/v1/stats?group_by=source").json()
    assert [(g["key"], g["total"], g["mean_rating"]) for g in by_source["groups"]] == [
        ("public", 1, 4.0)]  # fmt: skip
    assert by_source["start"] < by_source["end"]  # no range given: the last 30 days
    assert_error(resident.get("/api/v1/public/reports/SB-AAAAAAAAAAAAAAAAAAAA"), 404, "not_found")
    assert resident.get("/r").status_code == 200


def test_a_grid_worker_reports_in_their_grid_and_works_only_what_is_theirs(
    community: httpx.Client, api_url: str, client_for: Any
) -> None:
    worker = grid_worker(api_url)
    report = {"category": "public_safety", "priority": "major", "title": "电动车违规充电",
              "area": COMMUNITY, "site": "楼村花园", "building": "5栋", "lat": 22.78,
              "lon": 113.93, "note": "一楼大堂"}  # fmt: skip
    filed = worker.post("/api/v1/incidents", json=report)
    assert filed.status_code == 201, filed.text
    mine = filed.json()
    assert (mine["status"], mine["source"], mine["reported_by"], mine["priority"]) == (
        "reported", "report", "李网格-GW-7", "major")  # fmt: skip
    assert mine["suggested_unit_id"] == "GW-7"  # the nearest unit for its category
    audit = community.get(f"/api/v1/incidents/{mine['id']}/audit").json()
    assert (audit[0]["action"], audit[0]["note"]) == ("report", "一楼大堂")

    assert_error(worker.post("/api/v1/incidents", json={**report, "area": OTHER_COMMUNITY}),
                 403, "forbidden")  # fmt: skip
    assert_error(worker.post("/api/v1/incidents", json={**report, "lat": 22.7, "lon": None}),
                 422, "validation_error")  # fmt: skip
    someone = client_for("dispatcher", COMMUNITY).post("/api/v1/incidents", json={
        **report, "title": "井盖缺失"}).json()  # fmt: skip
    assert [i["id"] for i in worker.get("/api/v1/incidents").json()["items"]] == [mine["id"]]
    assert_error(worker.get(f"/api/v1/incidents/{someone['id']}"), 404, "not_found")
    assert_error(worker.get("/api/v1/devices"), 403, "forbidden")
    assert_error(worker.post(f"/api/v1/incidents/{mine['id']}/actions", json={"action": "accept"}),
                 403, "forbidden")  # fmt: skip
    assert_error(worker.post(f"/api/v1/incidents/{someone['id']}/actions",
                             json={"action": "start"}), 404, "not_found")  # fmt: skip
    act(worker, mine["id"], "comment", note="已拍照")

    dispatcher = client_for("dispatcher", COMMUNITY)
    act(dispatcher, someone["id"], "accept")
    act(dispatcher, someone["id"], "dispatch", unit_id="GW-7")
    assert {i["id"] for i in worker.get("/api/v1/incidents").json()["items"]} == {
        mine["id"], someone["id"]}  # fmt: skip
    assert act(worker, someone["id"], "acknowledge")["status"] == "dispatched"
    assert act(worker, someone["id"], "start")["status"] == "handling"

    reports = dispatcher.get("/api/v1/incidents?source=report").json()["items"]
    assert {i["id"] for i in reports} == {mine["id"], someone["id"]}
    assert dispatcher.get("/api/v1/incidents?source=rule").json()["items"] == []
    unit_less = grid_worker(api_url, unit_id=None)
    assert unit_less.get("/api/v1/incidents").json()["items"] == []
    for unit, area in (("GW-NONE", COMMUNITY), ("GW-7", OTHER_COMMUNITY)):  # none, or not there
        refused = community.post("/api/v1/tokens", json={"name": "x", "role": "grid_worker",
                                                         "area_prefix": area, "unit_id": unit})  # fmt: skip
        assert_error(refused, 422, "validation_error", unit)


def test_uploads_that_are_not_pictures_or_too_large_are_refused(
    community: httpx.Client, client_for: Any
) -> None:
    dispatcher = client_for("dispatcher", COMMUNITY)
    incident = dispatcher.post("/api/v1/incidents", json={
        "category": "fire_safety", "title": "消防栓损坏", "area": COMMUNITY}).json()  # fmt: skip
    path = f"/api/v1/incidents/{incident['id']}/attachments"

    def upload(data: bytes, name: str = "photo.jpg", kind: str = "image/jpeg") -> httpx.Response:
        return dispatcher.post(path, files={"file": (name, data, kind)})

    assert_error(upload(b"#!/bin/sh\nrm -rf /\n"), 415, "unsupported_media_type", "JPEG or PNG")
    assert_error(upload(b"GIF89a" + bytes(100), "a.gif", "image/gif"), 415,
                 "unsupported_media_type")  # fmt: skip
    assert_error(upload(photo()[:200]), 415, "unsupported_media_type", "cannot be read")
    big = photo("PNG", (1200, 1200))  # noise-free, but still: pad past the limit
    assert_error(upload(big + bytes(1024 * 1024)), 413, "payload_too_large")
    bomb = io.BytesIO()
    Image.new("1", (9000, 9000)).save(bomb, "PNG")  # small file, 81 megapixels
    assert_error(upload(bomb.getvalue(), "b.png", "image/png"), 413, "payload_too_large",
                 "pixels")  # fmt: skip
    assert_error(dispatcher.post(path, files={"other": ("a.jpg", photo(), "image/jpeg")}),
                 422, "validation_error")  # fmt: skip
    assert dispatcher.get(path).json() == []  # nothing refused was kept
    viewer = client_for("viewer", COMMUNITY)
    assert_error(viewer.post(path, files={"file": ("a.jpg", photo(), "image/jpeg")}),
                 403, "forbidden")  # fmt: skip
    assert upload(photo(), "no-extension", "application/octet-stream").status_code == 201


def test_the_public_intake_refuses_wrong_keys_and_limits_floods(
    community: httpx.Client, settings: Settings
) -> None:
    key = intake_key(community)
    report = {"category": "public_safety", "title": "路灯不亮"}
    with httpx.Client(base_url=str(community.base_url)) as resident:
        for wrong in ("", "sbk_not-a-key", key[:-2] + "xx", "sb_" + key[4:]):
            assert_error(resident.post("/api/v1/public/reports", json=report,
                                       headers={"X-Intake-Key": wrong}),
                         401, "unauthorized")  # fmt: skip
        assert_error(resident.post("/api/v1/public/reports", json={**report, "area": COMMUNITY},
                                   headers={"X-Intake-Key": key}), 422, "validation_error")  # fmt: skip

    tight = settings.model_copy(update={"public_reports_per_minute": 3})
    with api_server(tight) as url, httpx.Client(base_url=url) as resident:
        flood = [resident.post(f"/api/v1/public/reports?key={key}", json=report)
                 for _ in range(3)]  # fmt: skip
        assert [r.status_code for r in flood] == [201, 201, 201]
        limited = resident.post(f"/api/v1/public/reports?key={key}", json=report)
        assert_error(limited, 429, "too_many_requests")
        assert int(limited.headers["Retry-After"]) >= 1
        followed = resident.get(f"/api/v1/public/reports/{flood[0].json()['receipt']}")
        assert followed.status_code == 200  # reading a receipt has a budget of its own
    assert len(community.get("/api/v1/incidents?source=public").json()["items"]) == 3

    [key_row] = community.get("/api/v1/intake-keys").json()
    assert "key" not in key_row and "key_hash" not in key_row
    assert community.delete(f"/api/v1/intake-keys/{key_row['id']}").status_code == 204
    elsewhere = intake_key(community, OTHER_COMMUNITY)
    with httpx.Client(base_url=str(community.base_url)) as resident:
        assert_error(resident.post("/api/v1/public/reports", json=report,
                                   headers={"X-Intake-Key": key}), 401, "unauthorized", "revoked")  # fmt: skip
        filed = resident.post("/api/v1/public/reports", json=report,
                              headers={"X-Intake-Key": elsewhere})  # fmt: skip
    assert filed.status_code == 201, filed.text
    [incident] = community.get(f"/api/v1/incidents?area={OTHER_COMMUNITY}").json()["items"]
    assert incident["area"] == OTHER_COMMUNITY and incident["reported_by"].startswith("public:")


def test_a_grid_worker_works_what_it_reported_and_sees_its_photos(
    community: httpx.Client, api_url: str, client_for: Any
) -> None:
    """design §6: a grid worker works what it reported (acknowledge, start, resolve) while no
    other unit has it, and downloads the photos of what it may see; nothing else."""
    worker, unit_less = grid_worker(api_url), grid_worker(api_url, unit_id=None)
    report = {"category": "public_safety", "priority": "routine", "title": "消防通道堆放杂物",
              "area": COMMUNITY, "building": "5栋"}  # fmt: skip

    def file(client: httpx.Client, title: str) -> int:
        filed = client.post("/api/v1/incidents", json={**report, "title": title})
        assert filed.status_code == 201, filed.text
        return int(filed.json()["id"])

    acknowledged, started, resolved = (file(worker, t) for t in ("一", "二", "三"))
    assert act(worker, acknowledged, "acknowledge")["status"] == "dispatched"
    assert act(worker, started, "start")["status"] == "handling"
    done = act(worker, resolved, "resolve", note="当场清理")
    assert (done["status"], done["unit_id"]) == ("resolved", "GW-7")
    steps = community.get(f"/api/v1/incidents/{resolved}/audit").json()
    assert [(e["action"], e["actor"]) for e in steps] == [
        ("report", "李网格-GW-7"), ("accept", "李网格-GW-7"), ("dispatch", "李网格-GW-7"),
        ("start", "李网格-GW-7"), ("resolve", "李网格-GW-7")]  # fmt: skip
    assert act(worker, started, "resolve")["status"] == "resolved"
    assert_error(worker.post(f"/api/v1/incidents/{started}/actions", json={"action": "resolve"}),
                 409, "conflict")  # the state decides, not the role  # fmt: skip

    # A unit-less grid worker works its own reports too (with no unit to give them to).
    own = file(unit_less, "四")
    assert act(unit_less, own, "start")["status"] == "handling"
    assert act(unit_less, own, "resolve")["status"] == "resolved"

    # Once a dispatcher has sent its report to another unit, that unit works it.
    dispatcher = client_for("dispatcher", COMMUNITY)
    assert community.post("/api/v1/units", json={
        "id": "GW-8", "name": "网格员 8", "kind": "grid_worker", "area": COMMUNITY,
        "categories": ["public_safety"]}).status_code == 201  # fmt: skip
    elsewhere = file(worker, "五")
    act(dispatcher, elsewhere, "accept")
    act(dispatcher, elsewhere, "dispatch", unit_id="GW-8")
    for action in ("acknowledge", "start", "resolve"):
        assert_error(worker.post(f"/api/v1/incidents/{elsewhere}/actions",
                                 json={"action": action}), 403, "forbidden")  # fmt: skip
    assert_error(unit_less.post(f"/api/v1/incidents/{acknowledged}/actions",
                                json={"action": "start"}), 404, "not_found")  # fmt: skip

    # Photos: its own report's and its unit's, downloadable; another's, not even by id.
    shot = worker.post(f"/api/v1/incidents/{started}/attachments",
                       files={"file": ("a.jpg", photo(), "image/jpeg")})  # fmt: skip
    assert shot.status_code == 201, shot.text
    others = dispatcher.post("/api/v1/incidents", json={**report, "title": "别人的"}).json()
    hidden = dispatcher.post(f"/api/v1/incidents/{others['id']}/attachments",
                             files={"file": ("b.png", photo("PNG"), "image/png")}).json()  # fmt: skip
    [listed] = worker.get(f"/api/v1/incidents/{started}/attachments").json()
    got = worker.get(f"/api/v1/attachments/{listed['id']}")
    assert (got.status_code, got.headers["content-type"]) == (200, "image/jpeg")
    assert Image.open(io.BytesIO(got.content)).size == (64, 48)
    assert_error(worker.get(f"/api/v1/attachments/{hidden['id']}"), 404, "not_found")
    assert_error(unit_less.get(f"/api/v1/attachments/{listed['id']}"), 404, "not_found")
    assert dispatcher.get(f"/api/v1/attachments/{hidden['id']}").status_code == 200


STAFF_WORDS = re.compile(
    r"\b(incidents?|incident_id|accept|dispatch|start|resolve|verify|reject|acknowledge|comment"
    r"|allowed|unit|rule|reported_by|uploaded_by)\b"
)


def _keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


def test_public_answers_speak_the_residents_language(
    community: httpx.Client, api_url: str, client_for: Any
) -> None:
    """No staff vocabulary (actions, states' rules, internal fields) and no internal incident
    number in anything the public intake answers, errors included."""
    key = intake_key(community)
    answers: list[httpx.Response] = []
    with httpx.Client(base_url=api_url) as resident:
        filed = resident.post("/api/v1/public/reports", headers={"X-Intake-Key": key},
                              json={"category": "fire_safety", "title": "消防通道堵塞"})  # fmt: skip
        receipt = filed.json()["receipt"]
        shot = resident.post(f"/api/v1/public/reports/{receipt}/attachments",
                             files={"file": ("a.jpg", photo(), "image/jpeg")})  # fmt: skip
        early = resident.post(f"/api/v1/public/reports/{receipt}/rating", json={"rating": 5})
        assert_error(early, 409, "conflict", "closed")
        answers += [filed, shot, early, resident.get(f"/api/v1/public/reports/{receipt}")]

        dispatcher = client_for("dispatcher", COMMUNITY)
        [incident] = dispatcher.get("/api/v1/incidents?source=public").json()["items"]
        act(dispatcher, incident["id"], "close", reason="duplicate")
        answers.append(resident.post(f"/api/v1/public/reports/{receipt}/rating",
                                     json={"rating": 3}))  # fmt: skip
        twice = resident.post(f"/api/v1/public/reports/{receipt}/rating", json={"rating": 1})
        assert_error(twice, 409, "conflict", "rated")
        answers += [
            twice,
            resident.post(f"/api/v1/public/reports/{receipt}/attachments",
                          files={"file": ("a.jpg", photo(), "image/jpeg")}),
            resident.post(f"/api/v1/public/reports/{receipt}/rating", json={"rating": 9}),
            resident.get("/api/v1/public/reports/SB-BBBBBBBBBBBBBBBBBBBB"),
            resident.post("/api/v1/public/reports", json={"category": "x", "title": "x"},
                          headers={"X-Intake-Key": "sbk_wrong"}),
        ]  # fmt: skip
    assert [a.status_code for a in answers] == [201, 201, 409, 200, 200, 409, 422, 422, 404, 401]
    for answer in answers:
        body = answer.json()
        assert not _keys(body) & {"incident_id", "id", "reported_by", "uploaded_by", "note",
                                  "unit_id"}, body  # fmt: skip
        if "error" in body:
            assert not STAFF_WORDS.search(body["error"]["message"]), body
    assert shot.json()["content_type"] == "image/jpeg"
