"""The broker files from `shaobing broker-config`, enforced by a real broker.

Runs against mosquitto (when installed) and the pure-Python amqtt fallback: a device publishes
only under its own id, wrong or rotated-out passwords and disabled devices are refused.
"""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hub.embedded.broker import EmbeddedBroker
from tests.mqtt_helpers import connect_reason, connected
from tests.test_registry_api import COMMUNITY, register_area

HUB_PASSWORD = "hub-secret-for-tests"


def broker_config(database_url: str, out: Path) -> str:
    """Run the real CLI command, as an operator would."""
    env = {**os.environ, "SB_DATABASE_URL": database_url}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "shaobing.cli",
            "broker-config",
            "--out",
            str(out),
            "--hub-password",
            HUB_PASSWORD,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


@pytest.fixture(params=["mosquitto", "amqtt"])
def broker_kind(request: pytest.FixtureRequest) -> str:
    if request.param == "mosquitto" and shutil.which("mosquitto") is None:
        pytest.skip("mosquitto is not installed on this machine (apt-get install mosquitto)")
    return str(request.param)


@pytest.fixture
def devices(admin: httpx.Client) -> dict[str, str]:
    """Passwords of devices A and B; C is registered but disabled."""
    register_area(admin)
    passwords = {}
    for device_id in ("DEV-A", "DEV-B", "DEV-C"):
        created = admin.post(
            "/api/v1/devices", json={"id": device_id, "type": "smoke_sensor", "area": COMMUNITY}
        )
        passwords[device_id] = created.json()["credentials"]["password"]
    admin.patch("/api/v1/devices/DEV-C", json={"enabled": False})
    return passwords


@pytest.fixture
def broker(
    broker_kind: str, devices: dict[str, str], database_url: str, tmp_path: Path
) -> Iterator[EmbeddedBroker]:
    output = broker_config(database_url, tmp_path / "mqtt")
    assert "2 device(s)" in output
    acl = (tmp_path / "mqtt" / "acl").read_text()
    # A device writes its uplinks only, never a `cmd` topic (which it would command itself with).
    assert "topic readwrite sb/#" in acl and "pattern write sb/+/%u/+" not in acl
    assert "pattern write sb/+/%u/telemetry" in acl and "pattern read sb/+/%u/cmd" in acl
    running = EmbeddedBroker(tmp_path, amqtt_plugins="devices.amqtt_plugins", prefer=broker_kind)
    running.start()
    yield running
    running.stop()


def drain(received: queue.Queue[object], wait: float = 1.0) -> list[str]:
    topics = []
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            message = received.get(timeout=0.1)
        except queue.Empty:
            continue
        topics.append(message.topic)  # type: ignore[attr-defined]
    return topics


def test_device_writes_only_under_its_own_id(
    broker: EmbeddedBroker, devices: dict[str, str]
) -> None:
    v5 = broker.kind == "mosquitto"
    port = broker.port
    assert port is not None
    with connected(port, "shaobing.hub", HUB_PASSWORD, v5=v5) as (hub, received):
        hub.subscribe("sb/#", qos=1)
        time.sleep(0.3)
        with connected(port, "DEV-A", devices["DEV-A"], v5=v5) as (dev_a, _):
            dev_a.publish(f"sb/{COMMUNITY}/DEV-A/telemetry", b'{"seq": 1}', qos=1).wait_for_publish(
                5
            )
            dev_a.publish(f"sb/{COMMUNITY}/DEV-B/telemetry", b'{"seq": 2}', qos=1).wait_for_publish(
                5
            )
            dev_a.publish(f"sb/{COMMUNITY}/DEV-A/extra/deep", b"{}", qos=1).wait_for_publish(5)
            for channel in ("cmd", "config", "telemetry2", "event", "status"):
                dev_a.publish(f"sb/{COMMUNITY}/DEV-A/{channel}", b"{}", qos=1).wait_for_publish(5)
            dev_a.publish(f"sb/{COMMUNITY}/DEV-B/cmd", b"{}", qos=1).wait_for_publish(5)
            topics = drain(received)
    # Only its own telemetry, event and status arrive: a device cannot forge a command to itself
    # or another device (the hub's `cmd` is read by the device, never written).
    assert topics == [f"sb/{COMMUNITY}/DEV-A/{c}" for c in ("telemetry", "event", "status")]


def test_device_reads_only_its_own_commands(
    broker: EmbeddedBroker, devices: dict[str, str]
) -> None:
    v5 = broker.kind == "mosquitto"
    port = broker.port
    assert port is not None
    with connected(port, "DEV-A", devices["DEV-A"], v5=v5) as (dev_a, inbox):
        dev_a.subscribe(f"sb/{COMMUNITY}/DEV-A/cmd", qos=1)
        dev_a.subscribe(f"sb/{COMMUNITY}/DEV-B/cmd", qos=1)
        dev_a.subscribe(f"sb/{COMMUNITY}/DEV-B/telemetry", qos=1)
        time.sleep(0.3)
        with connected(port, "shaobing.hub", HUB_PASSWORD, v5=v5) as (hub, _):
            for target in ("DEV-A/cmd", "DEV-B/cmd", "DEV-B/telemetry"):
                hub.publish(f"sb/{COMMUNITY}/{target}", b"{}", qos=1).wait_for_publish(5)
            topics = drain(inbox)
    assert topics == [f"sb/{COMMUNITY}/DEV-A/cmd"]


def test_wrong_unknown_and_disabled_are_refused(
    broker: EmbeddedBroker, devices: dict[str, str]
) -> None:
    v5 = broker.kind == "mosquitto"
    port = broker.port
    assert port is not None
    assert connect_reason(port, "DEV-A", devices["DEV-A"], v5=v5) == 0
    assert connect_reason(port, "DEV-A", "wrong-password", v5=v5) != 0
    assert connect_reason(port, "DEV-Z", "whatever", v5=v5) != 0
    assert connect_reason(port, "DEV-C", devices["DEV-C"], v5=v5) != 0


def test_rotation_takes_effect_on_reload(
    broker: EmbeddedBroker,
    devices: dict[str, str],
    admin: httpx.Client,
    database_url: str,
    tmp_path: Path,
) -> None:
    v5 = broker.kind == "mosquitto"
    port = broker.port
    assert port is not None
    new_password = admin.post("/api/v1/devices/DEV-A/credentials").json()["password"]
    broker_config(database_url, tmp_path / "mqtt")
    broker.reload()
    time.sleep(0.5)
    assert connect_reason(port, "DEV-A", devices["DEV-A"], v5=v5) != 0
    assert connect_reason(port, "DEV-A", new_password, v5=v5) == 0
