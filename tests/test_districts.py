"""Two districts whose communities have a site and a building of the same name ("楼村花园",
"3栋"), as happens in every city: their alarms never become one incident, a camera of one never
raises the other's priority, and neither district's tokens see or touch the other's."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from hub.contracts import Signal
from tests.conftest import issue
from tests.rules_helpers import RulesDriver, seed
from tests.test_registry_api import register_area
from tests.test_stream import next_event, ws_url

A, B = "440311001002", "440312001001"  # communities of two districts
SITE, BUILDING = "楼村花园", "3栋"


def signal(area: str, kind: str, source: str, at: float) -> Signal:
    return Signal(ts=T0 + timedelta(seconds=at), kind=kind, source_id=source,
                  source_type="camera" if source.startswith("CAM") else "smoke_sensor",
                  area=area, site=SITE, building=BUILDING, value=3.0)  # fmt: skip


T0 = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def twins(admin: httpx.Client, database_url: str, api_url: str) -> Iterator[dict[str, Any]]:
    register_area(admin, A, "楼村社区")
    register_area(admin, B, "楼村社区")  # the same name too
    for device_id, area in (("SD-A", A), ("SD-B", B)):
        admin.post("/api/v1/devices", json={"id": device_id, "type": "smoke_sensor", "area": area,
                                            "site": SITE, "building": BUILDING})  # fmt: skip
    seed(database_url)
    driver = RulesDriver(database_url, now=T0)
    tokens = {area: issue(api_url, "dispatcher", area[:6]) for area in (A, B)}
    yield {"driver": driver, "tokens": tokens}
    driver.close()


def client(api_url: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {token}"}, timeout=15)


def test_alarms_of_two_districts_stay_two_incidents(
    twins: dict[str, Any], api_url: str, admin: httpx.Client
) -> None:
    driver: RulesDriver = twins["driver"]
    with connect(ws_url(api_url, twins["tokens"][A])) as live_a:
        next_event(live_a, "stream.ready")
        driver.now = T0 + timedelta(seconds=1)
        driver.feed([signal(A, "smoke_alarm", "SD-A", 0), signal(B, "smoke_alarm", "SD-B", 0),
                     signal(B, "camera_smoke", "CAM-B", 0.5)])  # fmt: skip
        created = next_event(live_a, "incident.created")
        assert created["area"] == A
        with pytest.raises(TimeoutError):  # B's incident is not A's business
            next_event(live_a, "incident.created", timeout=1)
    listed = admin.get("/api/v1/incidents").json()["items"]
    by_area = {i["area"]: i for i in listed}
    # B's camera confirmed B's smoke alarm: evidence of that incident, not an incident of its own
    assert sorted(by_area) == [A, B] and len(listed) == 2
    assert by_area[A]["priority"] == "major"  # B's camera is in another district
    assert by_area[B]["priority"] == "emergency"
    assert by_area[A]["signal_count"] == 1 and by_area[B]["signal_count"] == 2


def test_neither_district_sees_or_touches_the_others(twins: dict[str, Any], api_url: str) -> None:
    driver: RulesDriver = twins["driver"]
    driver.now = T0 + timedelta(seconds=1)
    driver.feed([signal(A, "smoke_alarm", "SD-A", 0), signal(B, "smoke_alarm", "SD-B", 0)])
    for mine, theirs in ((A, B), (B, A)):
        with client(api_url, twins["tokens"][mine]) as me:
            items = me.get("/api/v1/incidents").json()["items"]
            assert [i["area"] for i in items] == [mine]
            others = client(api_url, twins["tokens"][theirs]).get("/api/v1/incidents").json()
            their_id = others["items"][0]["id"]
            assert me.get(f"/api/v1/incidents/{their_id}").status_code == 404
            assert me.get(f"/api/v1/incidents/{their_id}/signals").status_code == 404
            assert me.post(f"/api/v1/incidents/{their_id}/actions",
                           json={"action": "accept"}).status_code == 404  # fmt: skip
            signals = me.get("/api/v1/signals").json()["items"]
            assert {s["area"] for s in signals} == {mine}
            other_device = "SD-B" if mine == A else "SD-A"
            assert me.get(f"/api/v1/devices/{other_device}").status_code == 404
            assert me.get("/api/v1/stats").json()["groups"][0]["total"] == 1
