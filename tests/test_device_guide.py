"""docs/devices.md's first-device session, pasted as a new integrator would: against
`shaobing up --simulate` (what `make run` starts), with the token and MQTT port of its banner.
It must land: the device online with its state, an incident for its alarm, and its mistake
in the dead letters."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.embedded.ports import free_port
from tests.eventually import eventually
from tests.test_cli import SHAOBING, clean_env, stop

pytestmark = pytest.mark.slow  # the lanes: docs/testing.md

GUIDE = Path(__file__).parent.parent / "docs" / "devices.md"


def guide_session() -> str:
    """The shell blocks of the guide's "A first device, step by step", in order."""
    section = GUIDE.read_text(encoding="utf-8").split("## A first device, step by step")[1]
    section = section.split("\n## ")[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    assert blocks, "the guide's session is in sh blocks"
    return "".join(blocks)


def start_hub(data_dir: Path, port: int) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [*SHAOBING, "up", "--simulate"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, env=clean_env(SB_DATA_DIR=str(data_dir), SB_API_BIND=f"127.0.0.1:{port}",
                                 SB_VISION_WORKERS="0"),
    )  # fmt: skip
    lines: list[str] = []
    assert process.stdout is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "Ctrl-C stops" in line:
            return process, "".join(lines)
    process.kill()
    raise AssertionError("shaobing up did not start:\n" + "".join(lines))


def test_the_first_device_session_of_the_guide_lands(tmp_path: Path) -> None:
    port = free_port()
    process, banner = start_hub(tmp_path / "var", port)
    try:
        token = re.search(r"SB_TOKEN=(\S+)", banner)
        mqtt = re.search(r"on mqtt://[\d.]+:(\d+)", banner)
        assert token and mqtt, banner
        script = guide_session()
        script = script.replace("export SB_TOKEN=sb_...", f"export SB_TOKEN={token[1]}")
        script = script.replace("http://127.0.0.1:8000", f"http://127.0.0.1:{port}")
        script = re.sub(r"MQTT_PORT=\d+", f"MQTT_PORT={mqtt[1]}", script)
        register, rest = script.split("# 2. Come online", 1)
        env = dict(os.environ)
        if shutil.which("mosquitto_pub") is None:  # the clients are not installed here
            shim, python = Path(__file__).parent / "bin", Path(sys.executable).parent
            env["PATH"] = os.pathsep.join([str(shim), str(python), env["PATH"]])
        # Pasted in two goes, as a person does: the broker admits the new device meanwhile.
        first = subprocess.run(["bash", "-euo", "pipefail", "-c", register + "echo $PASSWORD"],
                               capture_output=True, text=True, timeout=60, env=env)  # fmt: skip
        assert first.returncode == 0, first.stderr
        password = first.stdout.strip().splitlines()[-1]
        time.sleep(2)
        setup = register.split("# 1. Register it")[0] + f"PASSWORD='{password}'\n"
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", setup + "# 2." + rest],
                              capture_output=True, text=True, timeout=60, env=env)  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr

        api = httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v1",
                           headers={"Authorization": f"Bearer {token[1]}"})  # fmt: skip
        state = wait(lambda: api.get("/devices/SD-0100").json()["state"],
                     lambda s: s["status"] == "online" and s["battery_pct"] == 96)  # fmt: skip
        assert (state["fw"], state["rssi_dbm"]) == ("1.0.0", -88)
        wait(lambda: api.get("/incidents", params={"open": "true"}).json()["items"],
             lambda items: any(i["rule_id"] == "smoke-alarm" and i["building"] == "3栋"
                               for i in items))  # fmt: skip
        letters = wait(lambda: api.get("/dead-letters", params={"device_id": "SD-0100"}).json(),
                       lambda page: page["items"])  # fmt: skip
        assert letters["items"][0]["reason"] == "bad_timestamp"
        assert "too old" in letters["items"][0]["detail"]
    finally:
        stop(process)


def wait(read: Any, ok: Any, timeout: float = 20) -> Any:
    return eventually(read, ok, timeout=timeout, every=0.3)
