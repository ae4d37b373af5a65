"""Catalogs: gathered to SumNum, asked again with backoff when incomplete, kept current by
catalog NOTIFYs, refreshed on POST /devices/{id}/catalog."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gb28181.sip import Timers
from hub.secret import hmac_key
from hub.settings import Settings
from tests.gb_helpers import Peer, gb_running, register_device

NVR = "44031100001180000001"
CH1, CH2, CH3 = "44031100001310000001", "44031100001310000002", "44031100001310000003"


@pytest.fixture
def hub(settings: Settings, database_url: str, clean_registry: None) -> Iterator[int]:
    # Timer F 3.2 s: an incomplete catalog is asked again 0.2 s after it.
    with gb_running(database_url, hmac_key(settings), timers=Timers(t1=0.05),
                    catalog_backoff_s=0.2) as port:  # fmt: skip
        yield port


def _items(*ids: str, event: str | None = None) -> str:
    extra = f"<Event>{event}</Event>" if event else ""
    return "".join(
        f"<Item><DeviceID>{i}</DeviceID><Name>通道{i[-1]}</Name><Status>ON</Status>{extra}</Item>"
        for i in ids
    )


def _catalog(root: str, sn: str, total: int, *ids: str, event: str | None = None) -> bytes:
    return (
        f'<?xml version="1.0" encoding="GB2312"?><{root}><CmdType>Catalog</CmdType><SN>{sn}</SN>'
        f'<DeviceID>{NVR}</DeviceID><SumNum>{total}</SumNum><DeviceList Num="{len(ids)}">'
        f"{_items(*ids, event=event)}</DeviceList></{root}>"
    ).encode("gb18030")


def _sn(body: bytes) -> str:
    found = re.search(rb"<SN>(\d+)</SN>", body)
    assert found
    return found[1].decode()


def _cameras(admin: httpx.Client) -> list[str]:
    items = admin.get("/api/v1/cameras", params={"device_id": NVR}).json()["items"]
    return sorted(c["id"] for c in items)


def _until(check: Any, what: str, timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, what
        time.sleep(0.05)
    return found


def test_an_incomplete_catalog_is_asked_again_and_notifies_keep_it_current(
    hub: int, admin: httpx.Client
) -> None:
    nvr = Peer(hub)
    try:
        assert nvr.register(NVR, register_device(admin, NVR)) == 200
        first = nvr.expect("Catalog")
        sent_at = time.monotonic()
        assert nvr.ask(nvr.request("MESSAGE", NVR, _catalog("Response", _sn(first.body), 2, CH1)))
        # One of two came: kept, and after Timer F and the backoff the hub asks again.
        again = nvr.expect("Catalog")
        assert time.monotonic() - sent_at >= 3.0
        assert _sn(again.body) != _sn(first.body)
        assert _cameras(admin) == [CH1]
        reply = _catalog("Response", _sn(again.body), 2, CH1, CH2)
        assert nvr.ask(nvr.request("MESSAGE", NVR, reply))
        _until(lambda: _cameras(admin) == [CH1, CH2], "the whole catalog")

        # A channel added, one removed, one going off: by catalog NOTIFY.
        for body in (_catalog("Notify", "90", 1, CH3, event="ADD"),
                     _catalog("Notify", "91", 1, CH1, event="DEL"),
                     _catalog("Notify", "92", 1, CH2, event="OFF")):  # fmt: skip
            answer = nvr.ask(nvr.request("NOTIFY", NVR, body))
            assert answer is not None and answer.status == 200
        _until(lambda: _cameras(admin) == [CH2, CH3], "catalog notifies applied")
        ch2 = admin.get(f"/api/v1/cameras/{CH2}").json()
        assert ch2["tags"]["gb_status"] == "OFF" and ch2["tags"]["gb_device"] == NVR

        # The API asks for the catalog again.
        assert admin.post(f"/api/v1/devices/{NVR}/catalog").status_code == 202
        nvr.expect("Catalog")
        assert admin.post(f"/api/v1/devices/{CH2}/catalog").status_code == 422
    finally:
        nvr.close()
