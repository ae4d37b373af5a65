"""Hub processes as an operator runs them: `shaobing <command>` subprocesses, with their
logs kept, readiness polled over HTTP, and SIGKILL when a test wants a crash."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from hub.embedded.ports import free_port
from tests.eventually import eventually

SHAOBING = [sys.executable, "-m", "shaobing.cli"]


def hub_env(**settings: str) -> dict[str, str]:
    """This environment without SB_* settings, plus the given ones."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SB_")}
    return {**env, "SB_LOG_LEVEL": "INFO", **settings}


class HubProcess:
    """One `shaobing` command. `http_port` is where its /readyz answers (the API's bind for
    `shaobing api`)."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], folder: Path) -> None:
        self.name = name
        self.http_port = free_port()
        self.args = [*args, "--http-port", str(self.http_port)] if args[0] != "api" else args
        self.env = env
        if args[0] == "api":
            self.env = {**env, "SB_API_BIND": f"127.0.0.1:{self.http_port}"}
        self.log_path = folder / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> HubProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [*SHAOBING, *self.args], env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        return self

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def readiness(self) -> tuple[int, dict[str, Any]]:
        """(status, body) of /readyz; (0, {}) while nothing answers."""
        try:
            response = httpx.get(f"{self.base}/readyz", timeout=5)
        except httpx.HTTPError:
            return 0, {}
        return response.status_code, response.json()

    def wait_ready(self, timeout: float = 60) -> None:
        self.wait_for(lambda status: status == 200, timeout, "ready")

    def wait_for(self, ok: Any, timeout: float, what: str) -> dict[str, Any]:
        def read() -> tuple[int, dict[str, Any]]:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited {self.process.returncode}:\n{self.log()}")
            return self.readiness()

        try:
            return eventually(read, lambda got: ok(got[0]), timeout=timeout, every=0.2)[1]
        except AssertionError as failed:
            if self.process is not None and self.process.poll() is not None:
                raise
            raise AssertionError(f"{self.name} never {what}: {failed}\n{self.log()}") from None

    def metric(self, name: str) -> float:
        """The sum of a metric's samples on the process's /metrics."""
        path = "/metrics"
        text = httpx.get(f"{self.base}{path}", timeout=5).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith(name) and not line.startswith("#"))  # fmt: skip

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]
