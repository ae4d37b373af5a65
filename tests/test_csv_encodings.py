"""CSV files as a spreadsheet on zh-CN Windows saves them: "CSV" in GBK (or GB18030), "CSV
UTF-8" with a byte-order mark, "Unicode text" in UTF-16 with a byte-order mark and tabs.
Devices, cameras and register residents each land with their Chinese names intact; a file in
none of these encodings is a 422 that says which encodings are taken."""

from __future__ import annotations

import codecs
import csv
import io
import json
import random
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from simulator.fleet import random_id_number
from tests.test_registry_api import COMMUNITY, assert_error, register_area

# A character GBK lacks (GB18030 has it): proves the file was read as GB18030, not GBK.
RARE = "䶮"


def utf16(bom: bytes, codec: str) -> Callable[[str], bytes]:
    return lambda text: bom + text.encode(codec)


# (name, encoder, cell delimiter, whether RARE fits)
ENCODINGS: list[tuple[str, Callable[[str], bytes], str, bool]] = [
    ("utf-8", lambda t: t.encode("utf-8"), ",", True),
    ("utf-8 with BOM", lambda t: t.encode("utf-8-sig"), ",", True),
    ("utf-16-le with BOM, tabs", utf16(codecs.BOM_UTF16_LE, "utf-16-le"), "\t", True),
    ("utf-16-be with BOM", utf16(codecs.BOM_UTF16_BE, "utf-16-be"), ",", True),
    ("gbk", lambda t: t.encode("gbk"), ",", False),
    ("gb18030", lambda t: t.encode("gb18030"), ",", True),
]
IDS = [e[0] for e in ENCODINGS]


def table(rows: list[list[str]], delimiter: str) -> str:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
    return out.getvalue()


def upload(client: httpx.Client, path: str, body: bytes) -> dict[str, Any]:
    response = client.post(path, content=body, headers={"Content-Type": "text/csv"})
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


@pytest.mark.parametrize(("name", "encode", "delimiter", "rare"), ENCODINGS, ids=IDS)
def test_devices_from_a_spreadsheet_keep_their_chinese_names(
    admin: httpx.Client, name: str, encode: Callable[[str], bytes], delimiter: str, rare: bool
) -> None:
    register_area(admin)
    site = "楼村花园" + (RARE if rare else "")
    text = table([["id", "type", "area", "site", "building", "tags"],
                  ["SD-1", "smoke_sensor", COMMUNITY, site, "3栋", "note=东侧楼梯"],
                  ["SD-2", "烟感", COMMUNITY, site, "3栋", ""]], delimiter)  # fmt: skip
    report = upload(admin, "/api/v1/devices/import", encode(text))
    assert (report["created"], [(e["row"], e["field"]) for e in report["errors"]]) == (
        1, [(3, "type")])  # fmt: skip
    device = admin.get("/api/v1/devices/SD-1").json()
    assert (device["site"], device["building"]) == (site, "3栋")
    assert device["tags"] == {"note": "东侧楼梯"}


@pytest.mark.parametrize(("name", "encode", "delimiter", "rare"), ENCODINGS, ids=IDS)
def test_cameras_from_a_spreadsheet_keep_their_chinese_names(
    admin: httpx.Client, name: str, encode: Callable[[str], bytes], delimiter: str, rare: bool
) -> None:
    register_area(admin)
    zone = "南门禁区" + (RARE if rare else "")
    zones = [{"name": zone, "kind": "restricted", "polygon": [[0, 0], [0.5, 0], [0.5, 1]]},
             {"name": "南门 闸机", "kind": "line", "polygon": [[0.1, 0.5], [0.9, 0.5]],
              "params": {"forward": "进", "backward": "出"}}]  # fmt: skip
    text = table([["id", "area", "stream_url", "site", "zones"],
                  ["CAM-1", COMMUNITY, "rtsp://192.0.2.10/ch1", "南门", json.dumps(zones)]],
                 delimiter)  # fmt: skip
    report = upload(admin, "/api/v1/cameras/import", encode(text))
    assert (report["created"], report["errors"]) == (1, []), report
    camera = admin.get("/api/v1/cameras/CAM-1").json()
    assert camera["site"] == "南门"
    assert [z["name"] for z in camera["zones"]] == [zone, "南门 闸机"]
    assert camera["zones"][1]["params"] == {"forward": "进", "backward": "出"}


@pytest.mark.parametrize(("name", "encode", "delimiter", "rare"), ENCODINGS, ids=IDS)
def test_register_residents_from_a_spreadsheet_keep_their_chinese_buildings(
    admin: httpx.Client, name: str, encode: Callable[[str], bytes], delimiter: str, rare: bool
) -> None:
    register_area(admin)
    assert admin.post("/api/v1/registers", json={"area": COMMUNITY, "name": "楼村社区居民"}
                      ).status_code == 201  # fmt: skip
    rng = random.Random(name)
    building = "七栋" + (RARE if rare else "")
    text = table([["id_number", "building", "unit"],
                  [random_id_number(rng), building, "一单元"],
                  [random_id_number(rng, valid=False), building, "二单元"]], delimiter)  # fmt: skip
    report = upload(admin, f"/api/v1/registers/{COMMUNITY}/import", encode(text))
    assert (report["added"], [p["row"] for p in report["rejected"]]) == (1, [3])
    [resident] = admin.get(f"/api/v1/registers/{COMMUNITY}/residents").json()["items"]
    assert (resident["building"], resident["unit"]) == (building, "一单元")


@pytest.mark.parametrize(("path", "header"), [
    ("/api/v1/devices/import", b"id,type,area"), ("/api/v1/cameras/import", b"id,area,stream_url"),
    (f"/api/v1/registers/{COMMUNITY}/import", b"id_number,building,unit")])  # fmt: skip
def test_a_file_in_no_encoding_taken_is_a_422_naming_them(
    admin: httpx.Client, path: str, header: bytes
) -> None:
    register_area(admin)
    admin.post("/api/v1/registers", json={"area": COMMUNITY, "name": "居民"})
    for body, needles in (
        ("id,type,area,site\nX,smoke_sensor,440311001002,caf\xe9\n".encode("latin-1"),
         ("UTF-8", "UTF-16", "GB18030")),
        (codecs.BOM_UTF16_LE + "id,area\n".encode("utf-16-le") + b"\x00", ("UTF-16",)),
        (header + b"\nX\x00,a,b\n", ("line 2", "NUL")),
        (header + b'\n"X,a\n' + b"x" * 200_000 + b"\n", ("line", "field")),
    ):  # fmt: skip
        response = admin.post(path, content=body, headers={"Content-Type": "text/csv"})
        assert_error(response, 422, "validation_error", *needles)
    assert admin.get("/api/v1/devices").json()["items"] == []
    assert admin.get(f"/api/v1/registers/{COMMUNITY}/residents").json()["items"] == []
