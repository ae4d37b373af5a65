"""The `shaobing` command line, run as a user runs it."""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import click
import httpx
import pytest
import structlog
from click.testing import CliRunner

from hub.embedded.ports import free_port
from hub.settings import Settings
from shaobing.cli import main
from tests.eventually import eventually
from tests.mqtt_helpers import connect_reason

SHAOBING = [sys.executable, "-m", "shaobing.cli"]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SB_")}
    return {**env, **extra}


@dataclass(frozen=True)
class Done:
    """What a command run in this process left: as `subprocess.run` reports it."""

    returncode: int
    stdout: str
    stderr: str


def shaobing(*args: str, check: bool = False, **settings: str) -> Done:
    """`shaobing ARGS` run in this process (Click's CliRunner), with no SB_ setting but
    `settings`, as a user's shell with nothing configured runs it; for commands that start no
    service. The logging a command sets up (to the runner's stderr) is undone after it."""
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("SB_")}
    root = logging.getLogger()
    handlers, level, logs = root.handlers[:], root.level, structlog.get_config()
    try:
        done = CliRunner().invoke(main, list(args), env={**env, **settings})
    finally:
        root.handlers[:], root.level = handlers, level
        structlog.configure(**logs)
    if done.exception is not None and not isinstance(done.exception, SystemExit):
        raise done.exception  # a traceback: the test's failure, shown whole
    assert not check or done.exit_code == 0, done.stderr
    return Done(done.exit_code, done.stdout, done.stderr)


def test_token_create_prints_the_token_alone(database_url: str, api_url: str) -> None:
    done = shaobing("token", "create", "--role", "operator", "--area", "440311",
                    SB_DATABASE_URL=database_url)  # fmt: skip
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert re.fullmatch(r"sb_[A-Za-z0-9_-]{43}", token), done.stdout
    assert done.stdout == token + "\n"
    me = httpx.get(f"{api_url}/api/v1/areas", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200


def test_token_create_rejects_a_bad_area(database_url: str) -> None:
    done = shaobing("token", "create", "--role", "viewer", "--area", "44-03",
                    SB_DATABASE_URL=database_url)  # fmt: skip
    assert done.returncode == 2 and "4, 6, 9 or 12 digits" in done.stderr and done.stdout == ""


def test_bad_settings_are_one_clear_line() -> None:
    done = shaobing("migrate", SB_API_BIND="nonsense")
    assert done.returncode == 1
    assert "SB_API_BIND: expected host:port" in done.stderr and "Traceback" not in done.stderr


def test_the_real_entry_point_runs() -> None:
    """The in-process runs above stand for `python -m shaobing.cli`: this proves that runs."""
    done = subprocess.run([*SHAOBING, "migrate"], env=clean_env(SB_API_BIND="nonsense"),
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 1
    assert "SB_API_BIND: expected host:port" in done.stderr and "Traceback" not in done.stderr


def start_up(data_dir: Path, port: int, **settings: str) -> tuple[subprocess.Popen[str], list[str]]:
    """`shaobing up` with nothing configured (but `settings`); returns once the banner is
    out (it comes once the API is listening)."""
    process = subprocess.Popen(
        [*SHAOBING, "up"],
        env=clean_env(SB_DATA_DIR=str(data_dir), SB_API_BIND=f"127.0.0.1:{port}", **settings),
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


@pytest.mark.slow
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
        eventually(lambda: connect_reason(int(mqtt_match[2]), "SD-0001", password, v5=v5),
                   lambda reason: reason == 0, timeout=10, every=0.3,
                   what="the device admitted by the embedded broker")  # fmt: skip
    finally:
        stop(process)
    assert not (data_dir / "postgres" / "postmaster.pid").exists(), "PostgreSQL left running"

    # A lost admin token: make another on the hub's data directory, from anywhere.
    recovered = subprocess.run(
        [*SHAOBING, "token", "create", "--role", "admin"], cwd=tmp_path, capture_output=True,
        text=True, timeout=120, env=clean_env(SB_DATA_DIR=str(data_dir)),
    )  # fmt: skip
    assert recovered.returncode == 0, recovered.stderr
    assert f"using the hub in {data_dir.resolve()}" in recovered.stderr
    headers = {"Authorization": f"Bearer {recovered.stdout.strip()}"}

    process, lines = start_up(data_dir, port)
    try:
        assert "SB_TOKEN=" not in "".join(lines)  # first-start token only once
        # Devices keep finding the broker: the same port as the first time.
        assert f"on mqtt://127.0.0.1:{mqtt_match[2]} " in "".join(lines)
        device = httpx.get(f"{base}/api/v1/devices/SD-0001", headers=headers)
        assert device.status_code == 200
    finally:
        stop(process)


def test_up_without_a_model_says_vision_is_off_and_serves(tmp_path: Path) -> None:
    """The banner and /readyz say vision is off and why; the hub serves all the same."""
    from vision.processes import vision_available

    if missing_extra := vision_available():
        pytest.skip(missing_extra)
    missing = tmp_path / "models" / "yolo.pt"
    port = free_port()
    process, lines = start_up(tmp_path / "var", port, SB_YOLO_MODEL=str(missing))
    try:
        assert f"vision   OFF: SB_YOLO_MODEL {missing} does not exist" in "".join(lines)
        deadline = time.monotonic() + 60
        while (ready := httpx.get(f"http://127.0.0.1:{port}/readyz")).status_code != 200:
            assert time.monotonic() < deadline, ready.text
            time.sleep(0.3)
        vision = ready.json()["components"]["vision"]
        assert (vision["up"], vision["required"]) == (False, False)
        assert f"vision is off: SB_YOLO_MODEL {missing} does not exist" == vision["reason"]
    finally:
        stop(process)


@pytest.mark.parametrize("command", [
    ["migrate"], ["broker-config", "--out", "mqtt"], ["token", "create", "--role", "admin"],
    ["token", "list"], ["simulate", "--count", "1"],
])  # fmt: skip
def test_commands_refuse_a_data_directory_without_a_hub(
    tmp_path: Path, command: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run from another directory, a command must not start a second, empty hub there: it
    names the directory it looked in and stops, creating nothing."""
    monkeypatch.chdir(tmp_path)
    done = shaobing(*command, SB_MQTT_URL="mqtt://127.0.0.1:1")
    assert done.returncode == 1, done.stderr
    assert f"no hub in {tmp_path / 'var'} (SB_DATA_DIR)" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert not (tmp_path / "var" / "postgres").exists()


def test_token_list_and_revoke(database_url: str, api_url: str) -> None:
    url = database_url
    created = shaobing("token", "create", "--role", "viewer", "--area", "440311",
                       "--name", "大屏", SB_DATABASE_URL=url)  # fmt: skip
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{api_url}/api/v1/areas", headers=headers).status_code == 200

    listed = shaobing("token", "list", check=True, SB_DATABASE_URL=url).stdout
    row = next(line for line in listed.splitlines() if line.endswith("大屏"))
    token_id, role, area, state = row.split()[:4]
    assert (role, area, state) == ("viewer", "440311", "live")
    assert token not in listed and token[3:20] not in listed  # never the secret

    revoked = shaobing("token", "revoke", token_id, SB_DATABASE_URL=url)
    assert revoked.returncode == 0 and f"token {token_id} revoked" in revoked.stdout
    assert httpx.get(f"{api_url}/api/v1/areas", headers=headers).status_code == 401
    listed = shaobing("token", "list", check=True, SB_DATABASE_URL=url).stdout
    assert next(line for line in listed.splitlines() if line.endswith("大屏")).split()[3] == (
        "revoked"
    )
    missing = shaobing("token", "revoke", "999999", SB_DATABASE_URL=url)
    assert missing.returncode == 1 and "token 999999 not found" in missing.stderr


def lan_address() -> str | None:
    """This machine's address on its network (no packet is sent), or None when it has none."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))
            address = str(probe.getsockname()[0])
        except OSError:
            return None
    return None if address.startswith("127.") else address


@pytest.mark.slow
def test_the_embedded_broker_listens_where_sb_mqtt_listen_says(tmp_path: Path) -> None:
    """Devices on the network reach it at this machine's address, with the credentials
    their registration gave them; a taken address is said plainly."""
    address = lan_address()
    if address is None:
        pytest.skip("this machine has no network address besides loopback")
    port, mqtt_port = free_port(), free_port()
    process, lines = start_up(tmp_path / "var", port, SB_MQTT_LISTEN=f"0.0.0.0:{mqtt_port}")
    banner = "".join(lines)
    try:
        assert f"on mqtt://0.0.0.0:{mqtt_port}" in banner and "all interfaces" in banner
        token = re.search(r"SB_TOKEN=(\S+)", banner)
        assert token, banner
        headers = {"Authorization": f"Bearer {token[1]}"}
        base = f"http://127.0.0.1:{port}"
        httpx.post(f"{base}/api/v1/areas", json={"code": "440311001002", "name": "楼村社区"},
                   headers=headers).raise_for_status()  # fmt: skip
        created = httpx.post(f"{base}/api/v1/devices", headers=headers, json={
            "id": "SD-LAN", "type": "smoke_sensor", "area": "440311001002"}).json()  # fmt: skip
        password = created["credentials"]["password"]
        v5 = "mosquitto" in banner
        eventually(lambda: connect_reason(mqtt_port, "SD-LAN", password, v5=v5, host=address),
                   lambda reason: reason == 0, timeout=10, every=0.3,
                   what="a device on the network let in")  # fmt: skip

        taken = subprocess.run(
            [*SHAOBING, "up"], capture_output=True, text=True, timeout=120,
            env=clean_env(SB_DATA_DIR=str(tmp_path / "other"), SB_API_BIND=f"127.0.0.1:{free_port()}",
                          SB_MQTT_LISTEN=f"0.0.0.0:{mqtt_port}"),
        )  # fmt: skip
        assert taken.returncode != 0
        assert f"0.0.0.0:{mqtt_port} is in use" in taken.stdout + taken.stderr
        assert "Traceback" not in taken.stdout + taken.stderr
    finally:
        stop(process)


def commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += commands(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


# Commands whose work is the code's alone: the OpenAPI document is the same whatever SB_* says.
READ_NO_SETTINGS = {("openapi",)}


@pytest.mark.parametrize("command", commands(main), ids=" ".join)
def test_every_command_names_its_settings_and_their_defaults(command: tuple[str, ...]) -> None:
    done = CliRunner().invoke(main, [*command, "--help"], terminal_width=200)
    assert done.exit_code == 0, done.output
    if command in READ_NO_SETTINGS:
        assert "Settings: none" in done.output
        return
    assert "Settings (environment or .env):" in done.output
    assert "SB_DATABASE_URL (unset):" in done.output and "SB_DATA_DIR (./var):" in done.output
    assert "  SB_LOG_LEVEL (INFO): " in done.output


def test_the_configuration_page_lists_every_setting() -> None:
    page = (Path(__file__).parent.parent / "docs" / "configuration.md").read_text(encoding="utf-8")
    missing = [f"SB_{name.upper()}" for name in Settings.model_fields
               if f"`SB_{name.upper()}`" not in page]  # fmt: skip
    assert missing == []


def test_the_docs_close_every_code_block() -> None:
    """An unclosed fence swallows the rest of a section as code."""
    root = Path(__file__).parent.parent
    for page in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        text = page.read_text(encoding="utf-8")
        fences = [line for line in text.splitlines() if line.lstrip().startswith("```")]
        assert len(fences) % 2 == 0, page.name


@pytest.mark.slow
def test_a_start_on_a_busy_api_port_fails_plainly_and_keeps_the_first_token(
    tmp_path: Path,
) -> None:
    """The first admin token is made only once the API listens: a start that cannot listen
    says why in one line and makes none, so the next start still shows it."""
    data_dir = tmp_path / "var"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        failed = subprocess.run([*SHAOBING, "up"], capture_output=True, text=True, timeout=120,
                                env=clean_env(SB_DATA_DIR=str(data_dir),
                                              SB_API_BIND=f"127.0.0.1:{port}"))  # fmt: skip
    out = failed.stdout + failed.stderr
    assert failed.returncode == 1, out
    assert f"SB_API_BIND 127.0.0.1:{port} is in use" in out
    assert "SB_TOKEN=" not in out and "Traceback" not in out
    process, lines = start_up(data_dir, free_port())
    try:
        assert "SB_TOKEN=" in "".join(lines)
    finally:
        stop(process)
