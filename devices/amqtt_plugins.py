"""amqtt plugins that enforce the same rules as the Mosquitto files.

Authentication reads the registry's password file (Mosquitto's PBKDF2 format) and re-reads it
when it changes; the topic plugin lets a device write only its own telemetry, event and status
topics and read only its own `cmd` topic, and lets the hub user read and write everything
under `sb/`.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin

from devices.broker_config import DEVICE_DOWNLINK, DEVICE_UPLINKS, HUB_USER
from devices.credentials import verify_password


class RegistryAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]
    """Username/password against the registry's password file; anonymous clients refused."""

    @dataclass
    class Config:
        password_file: str = ""

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self._path = Path(self.config.password_file)
        self._mtime = 0.0
        self._users: dict[str, str] = {}

    def _users_now(self) -> dict[str, str]:
        try:
            mtime = self._path.stat().st_mtime
        except OSError:
            return self._users
        if mtime != self._mtime:
            users = {}
            for line in self._path.read_text(encoding="utf-8").splitlines():
                name, sep, hashed = line.partition(":")
                if sep and not line.startswith("#"):
                    users[name] = hashed
            self._users, self._mtime = users, mtime
        return self._users

    async def authenticate(self, *, session: Any) -> bool | None:
        if not session or not session.username:
            return False
        stored = self._users_now().get(session.username)
        return stored is not None and verify_password(session.password or "", stored)


class RegistryTopicPlugin(BaseTopicPlugin):  # type: ignore[misc]
    """Devices publish only `sb/<area>/<own id>/{telemetry,event,status}` and read their `cmd`."""

    @dataclass
    class Config:
        pass

    async def topic_filtering(
        self, *, session: Any = None, topic: str | None = None, action: Any = None
    ) -> bool | None:
        if session is None or topic is None:
            return False
        if session.username == HUB_USER:
            return topic.startswith("sb/") or topic.startswith("$SYS/")
        parts = topic.split("/")
        own = len(parts) == 4 and parts[0] == "sb" and parts[2] == session.username
        if action == Action.PUBLISH:
            return own and parts[3] in DEVICE_UPLINKS and "+" not in topic and "#" not in topic
        if action in (Action.SUBSCRIBE, Action.RECEIVE):
            return own and parts[3] == DEVICE_DOWNLINK
        return False


def main(config_path: str) -> None:
    """Run the broker until SIGTERM (used by EmbeddedBroker as a subprocess)."""
    import yaml

    logging.basicConfig(level=logging.WARNING, stream=sys.stdout)
    config = yaml.safe_load(Path(config_path).read_text())

    async def serve() -> None:
        broker = Broker(config)
        await broker.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        # The auth plugin re-reads its file on change, so a reload signal needs no action.
        loop.add_signal_handler(signal.SIGHUP, lambda: None)
        await stop.wait()
        await broker.shutdown()

    asyncio.run(serve())
