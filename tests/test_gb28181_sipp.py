"""GB/T 28181 against a real SIP peer: sipp (Debian's sip-tester) plays the camera, in UDP and
TCP. Registration (401, 403, 200 with a GB Date), the hub's catalog query answered in three
MESSAGEs, keepalive, alarms in GB2312 and GB18030 stored once each as signals."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from gb28181.server import GbConfig, run_gb28181
from gb28181.sip import FloodLimits, Timers
from hub.secret import hmac_key
from hub.settings import Settings
from hub.supervisor import Probe
from tests.gb_helpers import free_port
from tests.rules_helpers import running_rules
from tests.threads import in_background

SIPP = shutil.which("sipp")
SCENARIOS = Path(__file__).parent / "sipp"
HUB_ID = "44031100002000000001"
REALM = HUB_ID[:10]
DEVICE = "44031100001320000001"
CHANNEL, CHANNEL2, ALARM_IN = "44031100001310000001", "44031100001310000002", "44031100001340000001"
pytestmark = pytest.mark.skipif(SIPP is None, reason="sipp missing: apt-get install sip-tester")


@pytest.fixture
def gb_server(settings: Settings, database_url: str, clean_registry: None) -> Iterator[int]:
    port = free_port()
    config = GbConfig(
        database_url=database_url, host="127.0.0.1", port=port, hub_id=HUB_ID, realm=REALM,
        timezone="Asia/Shanghai", seal_key=hmac_key(settings), timers=Timers(t1=0.1),
        flood=FloodLimits(rate_per_s=10_000, burst=10_000), flush_s=0.1, sweep_s=0.5,
    )  # fmt: skip
    probe = Probe("gb28181")
    with in_background(lambda: run_gb28181(config, probe), lambda: probe.up, what="gb28181"):
        yield port


def _register(admin: httpx.Client, tags: dict[str, Any] | None = None) -> str:
    admin.post("/api/v1/areas", json={"code": "440311", "name": "龙华区"}).raise_for_status()
    answer = admin.post(
        "/api/v1/devices",
        json={
            "id": DEVICE,
            "type": "gb28181",
            "area": "440311",
            "site": "楼村花园",
            "building": "7栋",
            "tags": tags or {},
        },
    )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["credentials"]["username"] == DEVICE
    return str(body["credentials"]["password"])


def _sipp(port: int, transport: str, scenario: str, password: str, *extra: str) -> None:
    args = _sipp_args(port, transport, scenario, password, *extra)
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=SCENARIOS)
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])


def _sipp_args(port: int, transport: str, scenario: str, password: str, *extra: str) -> list[str]:
    assert SIPP is not None
    return [SIPP, f"127.0.0.1:{port}", "-sf", str(SCENARIOS / scenario), "-m", "1",
            "-t", "u1" if transport == "udp" else "t1", "-i", "127.0.0.1", "-p", "0",
            "-au", DEVICE, "-ap", password, "-key", "hub", HUB_ID, "-key", "device", DEVICE,
            "-key", "realm", REALM, "-key", "channel", CHANNEL, "-key", "channel2", CHANNEL2,
            "-key", "alarmin", ALARM_IN, "-timeout", "30", "-timeout_error", "-nostdin",
            "-trace_err", *extra]  # fmt: skip


def _until(check: Any, what: str, timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def _signals(database_url: str) -> list[dict[str, Any]]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT kind, source_id, source_type, confidence, attrs FROM signals"
            " WHERE attrs ? 'alarm_method' ORDER BY id"
        ).fetchall()
    return [dict(zip(("kind", "source_id", "source_type", "confidence", "attrs"), r,
                     strict=True)) for r in rows]  # fmt: skip


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_a_wrong_password_is_refused_without_a_second_challenge(
    gb_server: int, admin: httpx.Client, transport: str
) -> None:
    _register(admin)
    _sipp(gb_server, transport, "gb_register_wrong.xml", "not-the-password")
    metrics = httpx.get(admin.base_url.join("/metrics")).text
    assert 'sb_gb_registrations_total{outcome="failed",reason="wrong_password"}' in metrics


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_a_camera_registers_sends_its_catalog_keeps_alive_and_alarms(
    gb_server: int, admin: httpx.Client, database_url: str, transport: str
) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("TRUNCATE gb28181_alarms_seen")
    password = _register(admin, {"gb_set_guard": True})
    # The scenario checks the 401, the 200's GB Date and X-GB-Ver; its out-of-call half
    # answers the hub's catalog query with three MESSAGEs, DeviceInfo and the subscriptions.
    _sipp(gb_server, transport, "gb_device.xml", password, "-oocsf",
          str(SCENARIOS / "gb_device_ooc.xml"), "-d", "2500")  # fmt: skip

    cameras = _until(
        lambda: admin.get("/api/v1/cameras", params={"device_id": DEVICE}).json()["items"],
        "catalog cameras",
    )
    assert sorted(c["id"] for c in cameras) == [CHANNEL, CHANNEL2]
    first = next(c for c in cameras if c["id"] == CHANNEL)
    assert first["tags"]["gb_name"] == "大门 1" and first["stream_url"] == f"gb28181://{CHANNEL}"
    assert first["area"] == "440311" and first["lat"] == pytest.approx(22.55)
    assert (first["site"], first["building"]) == ("楼村花园", "7栋")  # the device's place
    device = admin.get(f"/api/v1/devices/{DEVICE}").json()
    assert device["state"]["online"] is True
    _until(lambda: admin.get(f"/api/v1/devices/{DEVICE}").json()["tags"].get("gb_model"),
           "DeviceInfo filled")  # fmt: skip
    with psycopg.connect(database_url) as conn:
        inputs = conn.execute("SELECT channel_id FROM gb28181_alarm_inputs").fetchall()
    assert inputs == [(ALARM_IN,)]

    signals = _until(lambda: _signals(database_url), "alarm signals")
    assert [(s["kind"], s["source_id"], s["source_type"]) for s in signals] == [
        ("intrusion", CHANNEL, "camera"),
        ("line_crossing", CHANNEL, "camera"),
    ]  # fmt: skip (the third MESSAGE repeated the first alarm: stored once)
    assert signals[0]["attrs"]["description"] == "区域入侵 A&B"
    assert signals[1]["attrs"]["description"] == "越界侦测 𠀀"
    assert signals[0]["confidence"] == 1.0 and signals[0]["attrs"]["priority"] == 1


INTRUSION_RULE = {
    "id": "gb-intrusion", "name": "GB camera intrusion", "match": {"kind": ["intrusion"]},
    "incident": {"category": "security", "priority": "major", "title": "Intrusion at {source_id}"},
}  # fmt: skip


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_alarms_become_incidents_commands_are_acked_and_silence_is_offline(
    gb_server: int, admin: httpx.Client, database_url: str, transport: str
) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("TRUNCATE gb28181_alarms_seen")
    # Heartbeat 2 s: offline after 6 s of silence.
    password = _register(admin, {"gb_heartbeat_s": 2, "gb_set_guard": False})
    assert admin.post("/api/v1/rules", json=INTRUSION_RULE).status_code == 201
    with running_rules(database_url):
        assert SIPP is not None
        device = subprocess.Popen(
            _sipp_args(gb_server, transport, "gb_device.xml", password, "-oocsf",
                       str(SCENARIOS / "gb_device_ooc.xml"), "-d", "4000"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=SCENARIOS,
        )  # fmt: skip
        try:
            _until(lambda: admin.get(f"/api/v1/devices/{DEVICE}").json()["state"]["online"],
                   "registered")  # fmt: skip
            sent = admin.post(f"/api/v1/devices/{DEVICE}/commands",
                              json={"command": "device_info"})  # fmt: skip
            assert sent.status_code == 202, sent.text
            path = f"/api/v1/devices/{DEVICE}/commands/{sent.json()['id']}"
            acked = _until(lambda: admin.get(path).json()["status"] not in ("pending", "sent"),
                           f"command answered {admin.get(path).json()}")  # fmt: skip
            assert acked and admin.get(path).json()["status"] == "acked", admin.get(path).json()
            assert "Model=DS-2CD3T47" in admin.get(path).json()["detail"]
            guard = admin.post(f"/api/v1/devices/{DEVICE}/commands", json={"command": "set_guard"})
            guard_path = f"/api/v1/devices/{DEVICE}/commands/{guard.json()['id']}"
            _until(lambda: admin.get(guard_path).json()["status"] == "acked", "SetGuard acked")
            incidents = _until(lambda: admin.get("/api/v1/incidents").json()["items"],
                               "an incident from the GB intrusion", timeout=20)  # fmt: skip
            assert [i["rule_id"] for i in incidents] == ["gb-intrusion"]
        finally:
            out, err = device.communicate(timeout=60)
        assert device.returncode == 0, (out[-3000:], err[-3000:])
    # The camera said nothing more: offline after min(Expires, 3 × heartbeat), its channels too.
    offline = _until(lambda: _offline_signals(database_url), "device_offline", timeout=20)
    assert DEVICE in offline


def _offline_signals(database_url: str) -> list[str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT source_id FROM signals WHERE kind = 'device_offline'"
            " AND attrs ->> 'reason' = 'heartbeat_timeout'"
        ).fetchall()
    return [r[0] for r in rows]
