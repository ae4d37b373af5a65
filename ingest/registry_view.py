"""Ingest's in-memory view of the registry, kept current through LISTEN sb_registry."""

from __future__ import annotations

import asyncio
import time

from psycopg import AsyncConnection
from psycopg.rows import DictRow

from devices.registry import REGISTRY_CHANNEL, DeviceRef, device_refs
from hub.db import connect
from hub.logs import get_logger

log = get_logger(__name__)
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

    async def follow(self, url: str) -> None:
        """Reload whenever the registry changes (and every 5 minutes); runs until cancelled."""
        while True:
            try:
                listener = await AsyncConnection.connect(url, autocommit=True)
                async with listener:
                    await listener.execute(f"LISTEN {REGISTRY_CHANNEL}")
                    while True:
                        await self._reload(url)
                        async for _ in listener.notifies(timeout=300, stop_after=1):
                            pass
                        async for _ in listener.notifies(timeout=0.1):
                            pass  # coalesce a burst of changes into one reload
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("registry follower lost its connection; retrying", error=str(exc))
                await asyncio.sleep(2)

    async def _reload(self, url: str) -> None:
        conn = await connect(url)
        async with conn:
            await self.load(conn)
