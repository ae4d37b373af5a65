"""CSV bulk import: dry run, per-row errors, partial and all-or-nothing writes."""

from __future__ import annotations

import httpx

from tests.test_registry_api import COMMUNITY, assert_error, register_area

HEADER = "id,type,area,site,building,floor,lat,lon,tags\n"
GOOD = [
    f"SD-1,smoke_sensor,{COMMUNITY},楼村花园,1栋,3,22.78,113.93,vendor=acme;model=JTY\n",
    f"SD-2,smoke_sensor,{COMMUNITY},,,,,,\n",
    f'R-1,id_reader,{COMMUNITY},,,,,,"{{""operator"": ""GW-0193""}}"\n',
]
BAD = [
    f"SD-3,toaster,{COMMUNITY},,,,,,\n",  # unknown type
    "SD-4,smoke_sensor,4403110010021,,,,,,\n",  # malformed area code
    "SD-5,smoke_sensor,440311009009,,,,,,\n",  # unregistered area
    f"SD-1,smoke_sensor,{COMMUNITY},,,,,,\n",  # repeats row 2
    f"SD-6,smoke_sensor,{COMMUNITY},,,,95,10,\n",  # latitude out of range
    f"SD-7,smoke_sensor,{COMMUNITY},,,,,,novalue\n",  # bad tags
    f"SD-8,smoke_sensor,{COMMUNITY},,,,,,,extra\n",  # too many cells
    f"bad id,smoke_sensor,{COMMUNITY},,,,,,\n",  # bad id
]


def post_csv(client: httpx.Client, text: str, **params: str) -> httpx.Response:
    return client.post(
        "/api/v1/devices/import",
        content=text.encode(),
        params=params,
        headers={"content-type": "text/csv"},
    )


def device_ids(client: httpx.Client) -> list[str]:
    return [d["id"] for d in client.get("/api/v1/devices").json()["items"]]


def test_dry_run_reports_every_bad_row_and_writes_nothing(admin: httpx.Client) -> None:
    register_area(admin)
    response = post_csv(admin, HEADER + "".join(GOOD + BAD), dry_run="true")
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["rows"] == 11 and report["valid"] == 3 and report["created"] == 0
    by_row = {(e["row"], e["field"]): e["message"] for e in report["errors"]}
    assert "smoke_sensor" in by_row[(5, "type")]
    assert "digits" in by_row[(6, "area")]
    assert "not registered" in by_row[(7, "area")]
    assert "repeats row 2" in by_row[(8, "id")]
    assert (9, "lat") in by_row
    assert "key=value" in by_row[(10, "tags")]
    assert "more cells" in by_row[(11, "tags")]
    assert (12, "id") in by_row
    assert report["credentials"] == []
    assert device_ids(admin) == []


def test_partial_import_writes_the_good_rows(admin: httpx.Client) -> None:
    register_area(admin)
    report = post_csv(admin, HEADER + "".join(GOOD + BAD)).json()
    assert report["created"] == 3 and len(report["errors"]) == 8
    assert sorted(c["username"] for c in report["credentials"]) == ["R-1", "SD-1", "SD-2"]
    assert device_ids(admin) == ["R-1", "SD-1", "SD-2"]
    sd1 = admin.get("/api/v1/devices/SD-1").json()
    assert sd1["tags"] == {"vendor": "acme", "model": "JTY"} and sd1["lat"] == 22.78
    assert admin.get("/api/v1/devices/R-1").json()["tags"] == {"operator": "GW-0193"}

    again = post_csv(admin, HEADER + GOOD[0]).json()
    assert again["created"] == 0 and again["errors"][0]["message"] == "device already exists"


def test_all_or_nothing_writes_nothing_when_a_row_is_bad(admin: httpx.Client) -> None:
    register_area(admin)
    report = post_csv(admin, HEADER + "".join(GOOD + BAD[:1]), all_or_nothing="true").json()
    assert report["valid"] == 3 and report["created"] == 0 and len(report["errors"]) == 1
    assert device_ids(admin) == []
    clean = post_csv(admin, HEADER + "".join(GOOD), all_or_nothing="true").json()
    assert clean["created"] == 3 and clean["errors"] == []


def test_multipart_upload(admin: httpx.Client) -> None:
    register_area(admin)
    response = admin.post(
        "/api/v1/devices/import",
        files={"file": ("devices.csv", (HEADER + GOOD[1]).encode(), "text/csv")},
    )
    assert response.status_code == 200, response.text
    assert response.json()["created"] == 1


def test_whole_file_errors(admin: httpx.Client) -> None:
    assert_error(post_csv(admin, "id,type\nX,smoke_sensor\n"), 422, "validation_error", "area")
    assert_error(
        post_csv(admin, "id,type,area,colour\n"),
        422,
        "validation_error",
        "unknown column(s): colour",
    )
    latin1 = admin.post(
        "/api/v1/devices/import",
        content="id,type,area,site\nX,smoke_sensor,440311001002,caf\xe9\n".encode("latin-1"),
        headers={"content-type": "text/csv"},
    )
    assert_error(latin1, 422, "validation_error", "UTF-8")
    json_body = admin.post("/api/v1/devices/import", json={"rows": []})
    assert_error(json_body, 415, "unsupported_media_type")


def test_rows_outside_the_callers_area_are_row_errors(admin: httpx.Client, client_for) -> None:  # type: ignore[no-untyped-def]
    register_area(admin)
    register_area(admin, "440311002001", "外街社区")
    integrator = client_for("integrator", "440311001")
    text = HEADER + GOOD[1] + "SD-9,smoke_sensor,440311002001,,,,,,\n"
    report = post_csv(integrator, text).json()
    assert report["created"] == 1
    assert report["errors"] == [
        {
            "row": 3,
            "id": "SD-9",
            "field": "area",
            "message": "area 440311002001 is outside your scope",
        }
    ]
    assert post_csv(client_for("viewer", ""), text).status_code == 403


CAMERA_HEADER = "id,area,stream_url,detect_url,fps,site,building,zones\n"
GATE = '"[{""name"": ""南门禁区"", ""kind"": ""restricted"", ""polygon"": [[0,0],[1,0],[1,1]]}]"'
CAMERAS_GOOD = [
    f"CAM-1,{COMMUNITY},rtsp://admin:pw@192.0.2.1/main,rtsp://192.0.2.1/sub,1,南门,,{GATE}\n",
    f"CAM-2,{COMMUNITY},file:///clips/lobby.mp4?loop=1,,,大堂,3栋,\n",
]
CAMERAS_BAD = [
    f"CAM-3,{COMMUNITY},,,,,,\n",  # no stream
    f"CAM-4,{COMMUNITY},rtsp://192.0.2.4/,,99,,,\n",  # fps out of range
    f'CAM-5,{COMMUNITY},rtsp://192.0.2.5/,,,,,"[{{""name"": ""x"", ""kind"": ""line""}}]"\n',
    f"CAM-6,{COMMUNITY},rtsp://192.0.2.6/,,,,,[not json\n",
    "CAM-7,440311009009,rtsp://192.0.2.7/,,,,,\n",  # unregistered area
    f"CAM-1,{COMMUNITY},rtsp://192.0.2.8/,,,,,\n",  # repeats row 2
]


def post_cameras(client: httpx.Client, text: str, **params: str) -> httpx.Response:
    return client.post("/api/v1/cameras/import", content=text.encode(), params=params,
                       headers={"content-type": "text/csv"})  # fmt: skip


def camera_ids(client: httpx.Client) -> list[str]:
    return [c["id"] for c in client.get("/api/v1/cameras").json()["items"]]


def test_cameras_import_like_devices(admin: httpx.Client) -> None:
    register_area(admin)
    text = CAMERA_HEADER + "".join(CAMERAS_GOOD + CAMERAS_BAD)
    dry = post_cameras(admin, text, dry_run="true").json()
    assert (dry["rows"], dry["valid"], dry["created"], dry["credentials"]) == (8, 2, 0, [])
    assert camera_ids(admin) == []
    by_row = {e["row"]: (e["field"], e["message"]) for e in dry["errors"]}
    assert sorted(by_row) == [4, 5, 6, 7, 8, 9]
    assert by_row[4][0] == "stream_url" and by_row[5][0] == "fps"
    assert by_row[6] == ("zones.0.polygon", "Field required")
    assert by_row[7] == ("zones", "zones is not valid JSON: Expecting value")
    assert by_row[8] == ("area", "area 440311009009 is not registered")
    assert by_row[9] == ("id", "id repeats row 2")
    assert "pw" not in str(dry)

    nothing = post_cameras(admin, text, all_or_nothing="true").json()
    assert nothing["created"] == 0 and camera_ids(admin) == []
    report = post_cameras(admin, text).json()
    assert report["created"] == 2 and sorted(c["username"] for c in report["credentials"]) == [
        "CAM-1", "CAM-2"]  # fmt: skip
    assert camera_ids(admin) == ["CAM-1", "CAM-2"]
    cam1 = admin.get("/api/v1/cameras/CAM-1").json()
    assert (cam1["stream_url"], cam1["detect_url"], cam1["fps"], cam1["site"]) == (
        "rtsp://admin:***@192.0.2.1/main", "rtsp://192.0.2.1/sub", 1.0, "南门")  # fmt: skip
    assert [z["name"] for z in cam1["zones"]] == ["南门禁区"]
    again = post_cameras(admin, CAMERA_HEADER + CAMERAS_GOOD[1]).json()
    assert again["created"] == 0 and again["errors"][0]["message"] == "device already exists"
    # A camera needs a stream: the device import sends it here.
    device_row = post_csv(admin, HEADER + f"CAM-9,camera,{COMMUNITY},,,,,,\n").json()
    assert device_row["created"] == 0 and "/api/v1/cameras/import" in (
        device_row["errors"][0]["message"])  # fmt: skip


def test_camera_import_is_scoped_and_for_registry_writers(admin: httpx.Client, client_for) -> None:  # type: ignore[no-untyped-def]
    register_area(admin)
    register_area(admin, "440311002001", "外街社区")
    integrator = client_for("integrator", "440311001")
    text = CAMERA_HEADER + CAMERAS_GOOD[1] + "CAM-9,440311002001,rtsp://192.0.2.9/,,,,,\n"
    report = post_cameras(integrator, text).json()
    assert report["created"] == 1
    assert [(e["row"], e["field"], e["message"]) for e in report["errors"]] == [
        (3, "area", "area 440311002001 is outside your scope")]  # fmt: skip
    for role in ("viewer", "operator", "dispatcher"):
        assert_error(post_cameras(client_for(role, ""), text), 403, "forbidden")
    assert_error(post_cameras(admin, "id,area\nX,1\n"), 422, "validation_error", "stream_url")
    assert_error(admin.post("/api/v1/cameras/import", json={}), 415, "unsupported_media_type")
    multipart = admin.post(
        "/api/v1/cameras/import",
        files={
            "file": ("cameras.csv", (CAMERA_HEADER + CAMERAS_GOOD[0]).encode("gbk"), "text/csv")
        },
    )
    assert multipart.status_code == 200 and multipart.json()["created"] == 1, multipart.text
