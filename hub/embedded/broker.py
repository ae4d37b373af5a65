"""An MQTT broker on 127.0.0.1: mosquitto when installed, else the pure-Python amqtt.

Both read the password file and ACL that `devices.broker_config` writes from the registry, and
both reload them when told the registry changed.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import yaml

from hub.embedded.ports import free_port, port_is_free, wait_for_port
from hub.logs import get_logger

log = get_logger(__name__)


class BrokerError(RuntimeError):
    """The embedded broker could not start."""


DEFAULT_LISTEN = ("127.0.0.1", 1883)
_LISTEN_FILE = "listen"  # the port of the last start, so that devices keep finding it
WILDCARDS = frozenset({"0.0.0.0", "::", ""})  # noqa: S104 - names them, binds nothing


def listen_address(broker_dir: Path, wanted: str | None) -> tuple[str, int]:
    """Where the embedded broker listens: `wanted` (SB_MQTT_LISTEN, host:port) exactly;
    else on loopback at the port it had last time, else 1883 when free, else a free port,
    which is kept for the next start."""
    if wanted:
        given_host, _, given_port = wanted.rpartition(":")
        return given_host.strip("[]"), int(given_port)
    host = DEFAULT_LISTEN[0]
    kept = broker_dir / _LISTEN_FILE
    try:
        last = int(kept.read_text().strip())
    except (OSError, ValueError):
        last = None
    if last is not None and port_is_free(host, last):
        return host, last
    if last is not None:
        log.warning("the embedded broker's port is taken now; devices must be moved", port=last)
    port = DEFAULT_LISTEN[1] if port_is_free(host, DEFAULT_LISTEN[1]) else free_port(host)
    broker_dir.mkdir(parents=True, exist_ok=True)
    kept.write_text(f"{port}\n")
    return host, port


class EmbeddedBroker:
    """A broker process whose files live in `data_dir/mqtt` (persistence included)."""

    def __init__(self, data_dir: Path, *, amqtt_plugins: str, prefer: str | None = None) -> None:
        """`amqtt_plugins`: the module whose auth and topic plugins the amqtt fallback loads
        (they read the same password file and apply the same ACL as mosquitto's)."""
        self.dir = (data_dir / "mqtt").resolve()
        self.amqtt_plugins = amqtt_plugins
        self.host = "127.0.0.1"  # where it listens
        self.port: int | None = None
        mosquitto = shutil.which("mosquitto")
        if prefer == "amqtt" or mosquitto is None:
            self.kind = "amqtt"
            self._binary: str | None = None
        else:
            self.kind = "mosquitto"
            self._binary = mosquitto
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def password_file(self) -> Path:
        return self.dir / "passwd"

    @property
    def acl_file(self) -> Path:
        return self.dir / "acl"

    @property
    def local_host(self) -> str:
        """The address the hub itself connects to."""
        if self.host in WILDCARDS:
            return "::1" if self.host == "::" else "127.0.0.1"
        return self.host

    def start(self, port: int | None = None, *, host: str | None = None) -> None:
        """Start on host:port (loopback and a free port by default); the password and ACL
        files must exist."""
        if not self.password_file.exists():
            raise BrokerError(f"{self.password_file} missing: write the broker files first")
        self.host = host if host is not None else self.host
        self.port = port or free_port()
        if not port_is_free(self.host, self.port):
            raise BrokerError(
                f"{self.host}:{self.port} is in use: set SB_MQTT_LISTEN to"
                " another address, or SB_MQTT_URL to use that broker"
            )
        (self.dir / "data").mkdir(parents=True, exist_ok=True)
        self._stop_leftover()
        command = self._mosquitto_command() if self.kind == "mosquitto" else self._amqtt_command()
        log_file = (self.dir / f"{self.kind}.log").open("ab")
        self._process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            command, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
        (self.dir / "broker.pid").write_text(str(self._process.pid))
        if not wait_for_port(self.local_host, self.port, timeout=20):
            self.stop()
            tail = (self.dir / f"{self.kind}.log").read_text(errors="replace")[-1500:]
            raise BrokerError(f"{self.kind} did not start on port {self.port}: {tail}")
        log.info("embedded MQTT broker started", broker=self.kind, host=self.host, port=self.port)

    def reload(self) -> None:
        """Re-read the password and ACL files (SIGHUP for both brokers)."""
        if self._process and self._process.poll() is None:
            self._process.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
        (self.dir / "broker.pid").unlink(missing_ok=True)

    def _stop_leftover(self) -> None:
        """A broker left running by a hub that was killed would hold the persistence files."""
        pid_file = self.dir / "broker.pid"
        try:
            pid = int(pid_file.read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return
        if str(self.dir).encode() in cmdline:
            log.warning("stopping a broker left over from an earlier run", pid=pid)
            os.kill(pid, signal.SIGTERM)

    def _mosquitto_command(self) -> list[str]:
        config = self.dir / "mosquitto.conf"
        config.write_text(
            "\n".join(
                [
                    "# Written by shaobing at every start; edit SB_* settings instead.",
                    # Stay the current user: the files are private to it.
                    f"user {getpass.getuser()}",
                    "per_listener_settings false",
                    f"listener {self.port} {self.host}",
                    "allow_anonymous false",
                    f"password_file {self.password_file}",
                    f"acl_file {self.acl_file}",
                    "persistence true",
                    f"persistence_location {self.dir / 'data'}/",
                    "autosave_interval 30",
                    # Ingest keeps a persistent session; queue enough for a restart of it.
                    "max_queued_messages 1000000",
                    "max_inflight_messages 1000",
                    # Send small packets (an alarm, a command) at once instead of waiting,
                    # under Nagle's algorithm, for the previous one to be acknowledged.
                    "set_tcp_nodelay true",
                    "log_dest stdout",
                    "log_type error",
                    "log_type warning",
                    "log_type notice",
                    "",
                ]
            )
        )
        assert self._binary is not None
        return [self._binary, "-c", str(config)]

    def _amqtt_command(self) -> list[str]:
        config = self.dir / "amqtt.yaml"
        plugins = self.amqtt_plugins
        config.write_text(
            yaml.safe_dump(
                {
                    "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
                    "plugins": {
                        f"{plugins}.RegistryAuthPlugin": {"password_file": str(self.password_file)},
                        f"{plugins}.RegistryTopicPlugin": {},
                    },
                }
            )
        )
        script = f"from {plugins} import main; main({str(config)!r})"
        return [sys.executable, "-c", script]
