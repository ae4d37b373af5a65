"""Every shell example of README.md and of the docs/ pages, pasted in order as a newcomer
pastes them: in the checkout (`.venv`, `./var`, `docs/`), against `shaobing up --simulate` on
its embedded PostgreSQL and broker, with the token and MQTT port of its banner, one block after
another in one shell. A command that fails, an HTTP answer of 400 or more, or a variable that an
example never set fails the test, naming the block.

The pages go in the order of `DOCUMENTS`: the README (its tour sets `$API` and `$AUTH` and
registers the sensor whose alarm opens an incident), then docs/api.md (the things the other
pages use: the camera, the units, the incident), then every other page by name.

A block that only shows a shape (a session with its output, a command for servers of one's own,
a benchmark) is preceded by `<!-- illustration: why -->` and is not pasted."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from hub.embedded.ports import free_port
from tests.test_cli import stop
from tests.test_device_guide import start_hub, wait

pytestmark = pytest.mark.slow  # the lanes: docs/testing.md

ROOT = Path(__file__).parent.parent
FIRST = [ROOT / "README.md", ROOT / "docs" / "api.md"]
DOCUMENTS = [*FIRST, *sorted(set((ROOT / "docs").glob("*.md")) - set(FIRST))]
SHELLS = {"sh", "bash", "shell", "console"}
ILLUSTRATION = re.compile(r"<!--\s*illustration\b[^>]*-->")  # alone on its line
FENCE = re.compile(r"^(`{3,})\s*([\w+-]*)\s*$")
DONE = "__paste_block_done__"


@dataclass(frozen=True)
class Block:
    document: Path
    line: int
    language: str
    text: str
    illustration: bool

    @property
    def where(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.line}"


def fenced_blocks(document: Path) -> list[Block]:
    """The fenced blocks of a Markdown file in order, each marked when an illustration comment
    stands right before it (blank lines between allowed)."""
    lines = document.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        opened = FENCE.match(lines[index])
        if not opened:
            index += 1
            continue
        fence, language = opened[1], opened[2].lower()
        end = index + 1
        while end < len(lines) and lines[end].strip() != fence:
            end += 1
        assert end < len(lines), f"{document.name}:{index + 1}: unclosed fence"
        before = next((line for line in reversed(lines[:index]) if line.strip()), "")
        found.append(Block(document, index + 1, language, "\n".join(lines[index + 1 : end]) + "\n",
                           bool(ILLUSTRATION.fullmatch(before.strip()))))  # fmt: skip
        index = end + 1
    return found


def pasted_blocks() -> list[Block]:
    return [b for d in DOCUMENTS for b in fenced_blocks(d) if b.language in SHELLS]


def test_the_markers_mark_blocks() -> None:
    """An illustration comment stands before a shell block, never astray (a moved comment
    would silently drop a block from the paste)."""
    for document in DOCUMENTS:
        lines = document.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines):
            if not ILLUSTRATION.fullmatch(line.strip()):
                continue
            following = next((x for x in lines[number + 1 :] if x.strip()), "")
            opened = FENCE.match(following)
            assert opened and opened[2].lower() in SHELLS, f"{document.name}:{number + 1}"
    pasted = [b for b in pasted_blocks() if not b.illustration]
    assert any(b.document.name == "README.md" for b in pasted)
    assert any(b.document.name == "api.md" for b in pasted)
    assert any(b.document.name == "devices.md" for b in pasted)


def for_this_hub(text: str, token: str, api_port: int, mqtt_port: str) -> str:
    """The blocks as a newcomer's own hub would have them: its token, ports."""
    text = text.replace("export SB_TOKEN=sb_...", f"export SB_TOKEN={token}")
    text = re.sub(r"(?:127\.0\.0\.1|localhost):8000", f"127.0.0.1:{api_port}", text)
    return re.sub(r"MQTT_PORT=\d+", f"MQTT_PORT={mqtt_port}", text)


def checkout_like(folder: Path) -> None:
    """A folder that stands for the checkout: its .venv and docs/ (the hub's ./var is made
    by `shaobing up` itself)."""
    (folder / ".venv").symlink_to(Path(sys.prefix))
    (folder / "docs").symlink_to(ROOT / "docs")
    if not (Path(sys.prefix) / "bin" / "activate").exists():
        pytest.skip(f"{sys.prefix} is not a virtual environment to activate")


def shell_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SB_")}
    if shutil.which("mosquitto_pub") is None:  # the clients are not installed here
        shim, python = Path(__file__).parent / "bin", Path(sys.executable).parent
        env["PATH"] = os.pathsep.join([str(shim), str(python), env["PATH"]])
    return env


# Each block's HTTP errors fail it, as a reader would see them; `set -u` catches a variable
# an earlier example should have set.
PRELUDE = """set -euo pipefail
curl() { command curl --fail-with-body --show-error --max-time 30 "$@"; }
"""


class Shell:
    """One bash that blocks are pasted into, one at a time; it keeps the variables."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.process = subprocess.Popen(["bash"], cwd=cwd, env=shell_env(), text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT)  # fmt: skip
        self.transcript: list[str] = []
        self.paste(PRELUDE, "prelude")

    def paste(self, text: str, where: str) -> None:
        assert self.process.stdin and self.process.stdout
        script = self.cwd / f"block-{len(self.transcript)}.sh"
        script.write_text(text, encoding="utf-8")
        # Sourced, so that variables carry on; stdin closed, so no command eats the next block.
        self.process.stdin.write(f"source {script} </dev/null\necho\necho {DONE}\n")
        self.process.stdin.flush()
        output: list[str] = []
        for line in self.process.stdout:
            if line.strip() == DONE:
                break
            output.append(line)
        else:
            self.process.wait(timeout=10)
            pytest.fail(f"the example at {where} failed (exit {self.process.returncode}):\n"
                        + text + "\n--- it said:\n" + "".join(output)[-4000:])  # fmt: skip
        self.transcript.append(f"## {where}\n{''.join(output)}")

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin
            self.process.stdin.close()
            self.process.wait(timeout=10)


def test_every_example_works_pasted_in_order(tmp_path: Path) -> None:
    if shutil.which("jq") is None or shutil.which("curl") is None:
        pytest.skip("the examples use curl and jq (apt-get install curl jq)")
    checkout_like(tmp_path)
    port = free_port()
    process, banner = start_hub(tmp_path / "var", port)
    shell = Shell(tmp_path)
    try:
        token = re.search(r"SB_TOKEN=(\S+)", banner)
        mqtt = re.search(r"on mqtt://[\d.]+:(\d+)", banner)
        assert token and mqtt, banner
        for block in pasted_blocks():
            if block.illustration:
                continue
            shell.paste(for_this_hub(block.text, token[1], port, mqtt[1]), block.where)
            time.sleep(2)  # a person reads the answer before pasting the next block
        api = httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v1",
                           headers={"Authorization": f"Bearer {token[1]}"})  # fmt: skip
        the_examples_did_what_they_say(api)
    finally:
        shell.close()
        stop(process)


def the_examples_did_what_they_say(api: httpx.Client) -> None:
    """Beyond answering 2xx: notifications.md's 火警 route would carry the fires its rules
    open, and the README's alarm opened an incident that docs/api.md's examples then worked."""
    fire = api.get("/rules/smoke-alarm").json()["document"]["incident"]["category"]
    route = api.get("/routes/fire-ops")
    assert route.status_code == 200, route.text
    assert fire in route.json()["match"]["category"], (fire, route.json())
    incidents = api.get("/incidents", params={"category": fire, "source": "rule"}).json()
    # the README's sensor's place (the simulator's 模拟小区 has a 2栋 of its own)
    worked = [i for i in incidents["items"] if (i["site"], i["building"]) == ("楼村花园", "2栋")]
    assert worked and worked[0]["status"] == "closed", incidents
    wait(lambda: api.get("/devices/SD-0100").json()["state"], lambda s: s["status"] == "online")
