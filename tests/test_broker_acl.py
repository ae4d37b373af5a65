"""The broker files from `shaobing broker-config`, enforced by a real broker.

Runs against mosquitto (when installed) and the pure-Python amqtt fallback: a device publishes
only under its own id, wrong or rotated-out passwords and disabled devices are refused.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from hub.embedded.broker import EmbeddedBroker
from hub.embedded.ports import free_port, wait_for_port
from tests.eventually import eventually
from tests.mqtt_helpers import connect_reason, connected, subscribe, until_control
from tests.test_registry_api import COMMUNITY, register_area

HUB_PASSWORD = "hub-secret-for-tests"


def broker_config(database_url: str, out: Path, *extra: str) -> str:
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
            *extra,
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


CONTROL = b'{"control": true}'  # sent last: once it is in, what else could come has come


def test_device_writes_only_under_its_own_id(
    broker: EmbeddedBroker, devices: dict[str, str]
) -> None:
    v5 = broker.kind == "mosquitto"
    port = broker.port
    assert port is not None
    with connected(port, "shaobing.hub", HUB_PASSWORD, v5=v5) as (hub, received):
        subscribe(hub, "sb/#")
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
            dev_a.publish(f"sb/{COMMUNITY}/DEV-A/status", CONTROL, qos=1).wait_for_publish(5)
            topics = until_control(received, CONTROL)
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
        subscribe(dev_a, f"sb/{COMMUNITY}/DEV-A/cmd")
        subscribe(dev_a, f"sb/{COMMUNITY}/DEV-B/cmd")
        subscribe(dev_a, f"sb/{COMMUNITY}/DEV-B/telemetry")
        with connected(port, "shaobing.hub", HUB_PASSWORD, v5=v5) as (hub, _):
            for target in ("DEV-A/cmd", "DEV-B/cmd", "DEV-B/telemetry"):
                hub.publish(f"sb/{COMMUNITY}/{target}", b"{}", qos=1).wait_for_publish(5)
            hub.publish(f"sb/{COMMUNITY}/DEV-A/cmd", CONTROL, qos=1).wait_for_publish(5)
            topics = until_control(inbox, CONTROL)
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
    eventually(lambda: connect_reason(port, "DEV-A", devices["DEV-A"], v5=v5),
               lambda reason: reason != 0, what="the old password refused")  # fmt: skip
    assert connect_reason(port, "DEV-A", devices["DEV-A"], v5=v5) != 0
    assert connect_reason(port, "DEV-A", new_password, v5=v5) == 0


@contextmanager
def mosquitto_as_its_user(folder: Path, port: int) -> Iterator[subprocess.Popen[str]]:
    """Stock mosquitto started by root, which drops to its own user before it reads the
    password file and ACL (as the eclipse-mosquitto image does)."""
    conf = folder / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous false\n"
                    f"password_file {folder / 'passwd'}\nacl_file {folder / 'acl'}\n")  # fmt: skip
    process = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_broker_reads_its_files_as_its_own_user(
    devices: dict[str, str], database_url: str
) -> None:
    if shutil.which("mosquitto") is None or os.geteuid() != 0:
        pytest.skip("needs mosquitto, started as root so that it drops to its own user")
    try:
        pwd.getpwnam("mosquitto")
    except KeyError:
        pytest.skip("no `mosquitto` user on this machine")
    folder = Path(tempfile.mkdtemp())
    try:
        folder.chmod(0o755)  # the broker's user must reach the files (pytest's tmp is 0700)
        # As root writes them by default, only root can read them: the broker cannot start.
        broker_config(database_url, folder)
        with mosquitto_as_its_user(folder, free_port()) as refused:
            output = refused.communicate(timeout=10)[0]
        assert refused.returncode != 0 and "Unable to open pwfile" in output, output
        broker_config(database_url, folder, "--owner", "mosquitto")
        record = pwd.getpwnam("mosquitto")
        for name in ("passwd", "acl"):
            info = (folder / name).stat()
            assert (info.st_uid, info.st_gid) == (record.pw_uid, record.pw_gid), name
            assert stat.S_IMODE(info.st_mode) == 0o600, name  # still private, to the broker
        port = free_port()
        with mosquitto_as_its_user(folder, port):
            assert wait_for_port("127.0.0.1", port, timeout=10)
            assert connect_reason(port, "shaobing.hub", HUB_PASSWORD) == 0
            assert connect_reason(port, "DEV-A", devices["DEV-A"]) == 0
    finally:
        shutil.rmtree(folder)


def test_a_bad_owner_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "shaobing.cli", "broker-config", "--out", str(tmp_path / "out"),
         "--owner", "no-such-user-here"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and "--owner" in done.stderr and "no-such-user-here" in done.stderr
    assert not (tmp_path / "out").exists()
