"""The `shaobing` command line, run as a user runs it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from hub.embedded.ports import free_port
from tests.mqtt_helpers import connect_reason

SHAOBING = [sys.executable, "-m", "shaobing.cli"]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SB_")}
    return {**env, **extra}


def test_token_create_prints_the_token_alone(database_url: str, api_url: str) -> None:
    done = subprocess.run(
        [*SHAOBING, "token", "create", "--role", "operator", "--area", "440311"],
        env=clean_env(SB_DATABASE_URL=database_url),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    token = done.stdout.strip()
    assert re.fullmatch(r"sb_[A-Za-z0-9_-]{43}", token), done.stdout
    assert done.stdout == token + "\n"
    me = httpx.get(f"{api_url}/api/v1/areas", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200


def test_token_create_rejects_a_bad_area(database_url: str) -> None:
    done = subprocess.run(
        [*SHAOBING, "token", "create", "--role", "viewer", "--area", "44-03"],
        env=clean_env(SB_DATABASE_URL=database_url),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "4, 6, 9 or 12 digits" in done.stderr and done.stdout == ""


def test_bad_settings_are_one_clear_line() -> None:
    done = subprocess.run(
        [*SHAOBING, "migrate"],
        env=clean_env(SB_API_BIND="nonsense"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "SB_API_BIND: expected host:port" in done.stderr and "Traceback" not in done.stderr


def start_up(data_dir: Path, port: int) -> tuple[subprocess.Popen[str], list[str]]:
    """`shaobing up` with nothing configured; returns once the banner is out (it comes
    once the API is listening)."""
    process = subprocess.Popen(
        [*SHAOBING, "up"],
        env=clean_env(SB_DATA_DIR=str(data_dir), SB_API_BIND=f"127.0.0.1:{port}"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    deadline = time.monotonic() + 90
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "Ctrl-C stops" in line:  # the banner's last line
            return process, lines
    process.kill()
    raise AssertionError("shaobing up did not start:\n" + "".join(lines))


def stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 0, out
    return out


def test_up_on_embedded_services_survives_a_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process, lines = start_up(data_dir, port)
    banner = "".join(lines)
    try:
        token_match = re.search(r"SB_TOKEN=(\S+)", banner)
        mqtt_match = re.search(r"embedded (mosquitto|amqtt) on mqtt://127.0.0.1:(\d+)", banner)
        assert token_match and mqtt_match, banner
        headers = {"Authorization": f"Bearer {token_match[1]}"}
        assert httpx.get(f"{base}/healthz").json()["status"] == "ok"
        assert (
            httpx.post(
                f"{base}/api/v1/areas",
                json={"code": "440311001002", "name": "楼村社区"},
                headers=headers,
            ).status_code
            == 201
        )
        created = httpx.post(
            f"{base}/api/v1/devices",
            json={"id": "SD-0001", "type": "smoke_sensor", "area": "440311001002"},
            headers=headers,
        ).json()
        password = created["credentials"]["password"]
        # The embedded broker picks up the new device without a restart.
        v5 = mqtt_match[1] == "mosquitto"
        deadline = time.monotonic() + 10
        while connect_reason(int(mqtt_match[2]), "SD-0001", password, v5=v5) != 0:
            assert time.monotonic() < deadline, "device never admitted by the embedded broker"
            time.sleep(0.3)
    finally:
        stop(process)
    assert not (data_dir / "postgres" / "postmaster.pid").exists(), "PostgreSQL left running"

    process, lines = start_up(data_dir, port)
    try:
        assert "SB_TOKEN=" not in "".join(lines)  # first-start token only once
        device = httpx.get(f"{base}/api/v1/devices/SD-0001", headers=headers)
        assert device.status_code == 200
    finally:
        stop(process)


@pytest.mark.parametrize("command", [["migrate"], ["broker-config", "--out", "{tmp}/mqtt"]])
def test_commands_work_on_the_embedded_database(tmp_path: Path, command: list[str]) -> None:
    args = [part.format(tmp=tmp_path) for part in command]
    done = subprocess.run(
        [*SHAOBING, *args],
        env=clean_env(SB_DATA_DIR=str(tmp_path / "var")),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "var" / "postgres" / "postmaster.pid").exists()
