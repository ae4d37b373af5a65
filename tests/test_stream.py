"""The WebSocket live stream: across processes, scoped by area, end to end from MQTT."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from hub.settings import MqttUrl
from tests.conftest import ADMIN_TOKEN, issue
from tests.ingest_helpers import Publisher, running_consumer
from tests.rules_helpers import running_rules, seed
from tests.test_registry_api import COMMUNITY, register_area

OPEN_IN_ANOTHER_PROCESS = """
import asyncio, sys
from datetime import UTC, datetime
from hub.db import connect
from incidents.models import NewIncident
from incidents.opening import open_or_attach
from incidents.sla import Sla
from hub.contracts import Priority

async def main():
    conn = await connect(sys.argv[1])
    async with conn:
        await open_or_attach(conn, NewIncident(
            rule_id="smoke-alarm", rule_version=1, group_key=sys.argv[3], category="fire",
            priority=Priority.MAJOR, area=sys.argv[2], site="楼村花园", building=sys.argv[3],
            title="Smoke alarm at 楼村花园 " + sys.argv[3], first_signal_at=datetime.now(UTC), last_signal_at=datetime.now(UTC)),
            now=datetime.now(UTC), sla=Sla())

asyncio.run(main())
"""


def ws_url(api_url: str, token: str) -> str:
    return api_url.replace("http://", "ws://") + f"/api/v1/stream?token={token}"


def next_event(ws: ClientConnection, kind: str, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no {kind} within {timeout} s"
        event: dict[str, Any] = json.loads(ws.recv(timeout=remaining))
        if event["type"] == kind:
            return event


def open_elsewhere(database_url: str, area: str, building: str) -> None:
    subprocess.run([sys.executable, "-c", OPEN_IN_ANOTHER_PROCESS, database_url, area, building],
                   check=True, timeout=60)  # fmt: skip


def test_an_incident_from_another_process_reaches_the_right_clients(
    admin: httpx.Client, api_url: str, database_url: str
) -> None:
    register_area(admin)
    register_area(admin, "440311002001", "外街社区")
    street = issue(api_url, "dispatcher", "440311001")
    other = issue(api_url, "dispatcher", "440311002")
    with connect(ws_url(api_url, street)) as mine, connect(ws_url(api_url, other)) as theirs:
        assert next_event(mine, "stream.ready")["area_prefix"] == "440311001"
        next_event(theirs, "stream.ready")
        open_elsewhere(database_url, COMMUNITY, "3栋")
        created = next_event(mine, "incident.created")
        assert created["incident"]["title"] == "Smoke alarm at 楼村花园 3栋"
        assert created["incident"]["status"] == "reported" and created["area"] == COMMUNITY
        open_elsewhere(database_url, "440311002001", "9栋")
        theirs_event = next_event(theirs, "incident.created")
        assert theirs_event["area"] == "440311002001"  # and not the first one
        with pytest.raises(TimeoutError):
            next_event(mine, "incident.created", timeout=1)
        admin.post(f"/api/v1/incidents/{created['id']}/actions", json={"action": "accept"})
        updated = next_event(mine, "incident.updated")
        assert updated["incident"]["status"] == "accepted"


def test_a_bad_token_is_refused(api_url: str, admin: httpx.Client) -> None:
    with connect(ws_url(api_url, "sb_wrong")) as ws, pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


def test_mqtt_smoke_alarm_to_websocket(
    admin: httpx.Client, api_url: str, database_url: str, mqtt_server: MqttUrl
) -> None:
    register_area(admin)
    admin.post("/api/v1/devices", json={"id": "SD-WS", "type": "smoke_sensor", "area": COMMUNITY,
                                        "site": "楼村花园", "building": "8栋"})  # fmt: skip

    seed(database_url)
    token = issue(api_url, "viewer", "440311001002")
    with (
        connect(ws_url(api_url, token)) as ws,
        running_rules(database_url),
        running_consumer(database_url, mqtt_server),
    ):
        next_event(ws, "stream.ready")
        pub = Publisher(mqtt_server)
        pub.send(f"sb/{COMMUNITY}/SD-WS/event",
                 {"seq": 1, "ts": int(time.time() * 1000), "type": "smoke_alarm", "smoke": 3.0})  # fmt: skip
        pub.close()
        created = next_event(ws, "incident.created")
    assert created["incident"]["rule_id"] == "smoke-alarm"
    assert created["incident"]["title"] == "烟感报警：楼村花园 8栋"


def test_a_browser_gives_its_token_in_the_first_message(api_url: str, admin: httpx.Client) -> None:
    """Browsers cannot set headers on a WebSocket, and a token in a URL ends up in logs."""
    base = api_url.replace("http", "ws", 1) + "/api/v1/stream"
    with connect(base) as ws:
        ws.send(json.dumps({"type": "auth", "token": ADMIN_TOKEN}))
        assert json.loads(ws.recv(timeout=5))["type"] == "stream.ready"
    with connect(base) as ws, pytest.raises(ConnectionClosed) as closed:
        ws.send(json.dumps({"type": "auth", "token": "sb_wrong"}))
        ws.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    with connect(base) as ws, pytest.raises(ConnectionClosed) as closed:
        ws.send("not json")
        ws.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
