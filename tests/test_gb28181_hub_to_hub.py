"""Two hubs cascade: a community hub (`shaobing gb28181`, a process of its own on its own
database) registers up to a street hub as a lower platform (a gb28181 device with a type-200
id). The street hub gathers its catalog (the community's smoke sensors as alarm inputs), and a
smoke alarm in the community becomes an incident in the street hub within a second."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from devices.credentials import seal_password
from gb28181.sip import Timers
from hub import signal_log
from hub.contracts import Signal
from hub.db import connect
from hub.migrations import migrate
from hub.secret import hmac_key
from hub.settings import Settings
from rules.model import Rule
from rules.store import create_rule
from tests.gb_helpers import HUB_ID, REALM, free_port, gb_running
from tests.hub_processes import HubProcess, hub_env
from tests.rules_helpers import running_rules, seed
from tests.services import scratch_database

COMMUNITY_HUB = "44031100012000000007"  # type 200: a lower platform
COMMUNITY_SECRET = "community-hub-secret-key"
DISTRICT, STREET, COMMUNITY = "440311", "440311001", "440311001001"
SMOKE_RULE = {
    "id": "smoke", "name": "smoke", "match": {"kind": ["smoke_alarm"]},
    "incident": {"category": "fire", "priority": "emergency", "title": "Smoke at {site} {building}"},
}  # fmt: skip


@pytest.fixture
def community_db(pg_server: str) -> Iterator[str]:
    with scratch_database(pg_server) as url:

        async def run() -> None:
            conn = await connect(url)
            async with conn:
                await migrate(conn)

        asyncio.run(run())
        yield url


def _until(check: Any, what: str, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def _seed_community(url: str, street_port: int, password: str) -> str:
    """The community hub's own registry: its areas, a smoke sensor, its uplink to the street
    hub (written as its API would, the password sealed with its key). The sensor's channel."""
    with psycopg.connect(url, autocommit=True) as conn:
        for code, name, parent, level in ((DISTRICT, "龙华区", None, "district"),
                                          (STREET, "民治街道", DISTRICT, "street"),
                                          (COMMUNITY, "北站社区", STREET, "community")):  # fmt: skip
            conn.execute("INSERT INTO areas (code, name, parent_code, level) VALUES (%s,%s,%s,%s)",
                         (code, name, parent, level))  # fmt: skip
        row = conn.execute(
            "INSERT INTO devices (id, type, area, site, building, lat, lon, password_hash)"
            " VALUES ('SD-1', 'smoke_sensor', %s, '北站花园', '3栋', 22.6, 114.03, 'x')"
            " RETURNING gb_channel_id",
            (COMMUNITY,),
        ).fetchone()
        assert row is not None
        conn.execute(
            "INSERT INTO gb28181_uplinks (id, name, upper_id, upper_domain, host, port,"
            " transport, sealed_password, local_id, area_prefix, keepalive_s)"
            " VALUES ('street', '民治街道平台', %s, %s, '127.0.0.1', %s, 'udp', %s, %s, %s, 5)",
            (HUB_ID, REALM, street_port,
             seal_password(COMMUNITY_SECRET.encode(), "uplink:street", password),
             COMMUNITY_HUB, COMMUNITY),
        )  # fmt: skip

    async def rule() -> None:
        conn = await connect(url)
        async with conn, conn.transaction():
            await create_rule(conn, Rule.model_validate(SMOKE_RULE), by="test")

    asyncio.run(rule())
    return str(row[0])


def _smoke(url: str) -> datetime:
    signal = Signal(ts=datetime.now(UTC), kind="smoke_alarm", source_id="SD-1",
                    source_type="smoke_sensor", area=COMMUNITY, site="北站花园",
                    building="3栋")  # fmt: skip

    async def append() -> None:
        conn = await psycopg.AsyncConnection.connect(url)
        async with conn, conn.transaction():
            await signal_log.append(conn, [signal])  # type: ignore[arg-type]

    asyncio.run(append())
    return datetime.now(UTC)


@pytest.mark.skipif(shutil.which("sipp") is None, reason="the GB tests run where sipp is")
def test_a_community_smoke_alarm_becomes_a_street_incident(
    admin: httpx.Client, settings: Settings, database_url: str, community_db: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    for code, name in ((DISTRICT, "龙华区"), (STREET, "民治街道")):
        admin.post("/api/v1/areas", json={"code": code, "name": name}).raise_for_status()
    made = admin.post("/api/v1/devices", json={"id": COMMUNITY_HUB, "type": "gb28181",
                                               "area": STREET, "site": "北站社区"})  # fmt: skip
    assert made.status_code == 201, made.text
    password = made.json()["credentials"]["password"]
    with gb_running(database_url, hmac_key(settings), timers=Timers(t1=0.1)) as street_port:
        channel = _seed_community(community_db, street_port, password)
        env = hub_env(SB_DATABASE_URL=community_db, SB_GB_LISTEN=f"127.0.0.1:{free_port()}",
                      SB_GB_ID=COMMUNITY_HUB, SB_SECRET=COMMUNITY_SECRET)  # fmt: skip
        community = HubProcess("community", ["gb28181"], env, tmp_path).start()
        try:
            community.wait_ready()
            _until(lambda: admin.get(f"/api/v1/devices/{COMMUNITY_HUB}").json()["state"]["online"],
                   "the community hub registered with the street hub")  # fmt: skip
            # The street hub gathered the community's catalog: the sensor is an alarm input.
            _until(lambda: _inputs(database_url) == [channel], "the community's alarm inputs")
            # DeviceInfo (asked after the catalog) and DeviceStatus (a command) answered.
            _until(lambda: admin.get(f"/api/v1/devices/{COMMUNITY_HUB}").json()["tags"]
                   .get("gb_manufacturer") == "Shaobing", "DeviceInfo answered")  # fmt: skip
            sent = admin.post(f"/api/v1/devices/{COMMUNITY_HUB}/commands",
                              json={"command": "device_status"})  # fmt: skip
            assert sent.status_code == 202, sent.text
            path = f"/api/v1/devices/{COMMUNITY_HUB}/commands/{sent.json()['id']}"
            _until(lambda: admin.get(path).json()["status"] == "acked", "DeviceStatus answered")
            assert "Online=ONLINE" in admin.get(path).json()["detail"]
            seed(database_url)  # the street hub's built-in rules (gb-alarm-input among them)
            with running_rules(database_url), running_rules(community_db):
                raised = _smoke(community_db)
                incident = _until(lambda: [i for i in admin.get("/api/v1/incidents").json()["items"]
                                           if i["rule_id"] == "gb-alarm-input"],
                                  "a street incident")  # fmt: skip
        finally:
            community.stop()
    opened = datetime.fromisoformat(incident[0]["created_at"])
    assert (opened - raised).total_seconds() < 1.0, (opened - raised, community.log())
    assert incident[0]["rule_id"] == "gb-alarm-input"
    assert "烟感报警" in incident[0]["title"] and incident[0]["area"] == STREET
    # The community hub's built-in smoke rule (major) opens an incident too: two alarms come
    # up, in either order; the test rule's (emergency) arrives with priority 1.
    rows = _until(lambda: [r for r in _device_alarms(database_url) if r[1]["priority"] == 1],
                  "the emergency alarm as priority 1")  # fmt: skip
    assert all(r[0] == COMMUNITY_HUB and r[1]["channel_id"] == channel
               for r in _device_alarms(database_url))  # fmt: skip
    assert rows


def _device_alarms(url: str) -> list[tuple[str, dict[str, Any]]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT source_id, attrs FROM signals WHERE kind = 'device_alarm' ORDER BY id"
        ).fetchall()
    return [(r[0], r[1]) for r in rows]


def _inputs(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT channel_id FROM gb28181_alarm_inputs").fetchall()
    return [r[0] for r in rows]
