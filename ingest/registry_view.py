"""Ingest's in-memory view of the registry, kept current through LISTEN sb_registry."""

from __future__ import annotations

import time

from psycopg import AsyncConnection
from psycopg.rows import DictRow

from devices.registry import REGISTRY_CHANNEL, DeviceRef, device_refs
from hub.db import connect
from hub.listen import wakeups
from hub.supervisor import Probe

_MISS_TTL = 5.0  # seconds before an unknown id is looked up again


class RegistryView:
    """Device id → DeviceRef, reloaded on registry changes; misses are re-checked lazily."""

    def __init__(self) -> None:
        self.devices: dict[str, DeviceRef] = {}
        self._misses: dict[str, float] = {}

    async def load(self, conn: AsyncConnection[DictRow]) -> None:
        self.devices = {ref.id: ref for ref in await device_refs(conn)}
        self._misses.clear()

    async def lookup_missing(self, conn: AsyncConnection[DictRow], ids: set[str]) -> None:
        """Fetch ids not in the view (a device registered a moment ago), at most every 5 s."""
        now = time.monotonic()
        wanted = [i for i in ids if i not in self.devices and self._misses.get(i, 0) < now]
        if not wanted:
            return
        for ref in await device_refs(conn, wanted):
            self.devices[ref.id] = ref
        for device_id in wanted:
            if device_id not in self.devices:
                self._misses[device_id] = now + _MISS_TTL

    async def follow(self, url: str, probe: Probe | None = None) -> None:
        """Reload whenever the registry changes, after every reconnection, and every 5
        minutes; runs until cancelled."""
        async for _ in wakeups(url, [REGISTRY_CHANNEL], idle=300, coalesce=0.1, probe=probe):
            conn = await connect(url)
            async with conn:
                await self.load(conn)
