"""Components of a process, restarted with backoff when they fail, with their health.

Every long-running part of a hub process (the MQTT consumer, the rules engine, a LISTEN
follower, the HTTP server) runs as a component: a coroutine the supervisor starts, restarts
with exponential backoff when it raises, and logs with its error. A component reports its
own readiness through its `Probe` (an MQTT consumer is up only while connected); `/readyz`
and `sb_component_up{component}` show them, so an orchestrator can act on a component that is
down without the process exiting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from prometheus_client import Gauge

from hub.backoff import Backoff
from hub.logs import get_logger

log = get_logger(__name__)
COMPONENT_UP = Gauge("sb_component_up", "1 while a component is running and ready", ["component"])
RESTARTS = Gauge("sb_component_restarts", "Times a component was restarted", ["component"])


@dataclass
class Probe:
    """What a component says about itself; the supervisor also sets it when it fails."""

    name: str
    up: bool = False
    reason: str = "starting"
    # A part the process can do without (vision in `shaobing up`): reported, not waited for.
    required: bool = True
    since: float = field(default_factory=time.monotonic)
    restarts: int = 0
    _up_event: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def ready(self) -> None:
        if not self.up:
            self.up, self.reason, self.since = True, "", time.monotonic()
            COMPONENT_UP.labels(self.name).set(1)
            self._up_event.set()

    def down(self, reason: str) -> None:
        if self.up or reason != self.reason:
            self.up, self.reason, self.since = False, reason, time.monotonic()
            COMPONENT_UP.labels(self.name).set(0)
            self._up_event.clear()

    async def wait_ready(self) -> None:
        await self._up_event.wait()

    def report(self) -> dict[str, object]:
        return {
            "up": self.up,
            "reason": self.reason or None,
            "for_s": round(time.monotonic() - self.since, 1),
            "restarts": self.restarts,
            "required": self.required,
        }


Work = Callable[[Probe], Awaitable[None]]


class Supervisor:
    """Runs components until cancelled; none of them can take the others down."""

    def __init__(self, process: str, backoff: Backoff | None = None) -> None:
        self.process = process
        self.backoff = backoff or Backoff()
        self._work: dict[str, Work] = {}
        self.probes: dict[str, Probe] = {}

    def add(self, name: str, work: Work, *, required: bool = True) -> Probe:
        """Register a component; `work` runs until cancelled (returning counts as a failure,
        except while the supervisor stops). One not `required` is reported by /readyz but
        does not make the process unready."""
        if name in self._work:
            raise ValueError(f"component {name} is registered twice")
        probe = Probe(name, required=required)
        COMPONENT_UP.labels(name).set(0)
        self._work[name] = work
        self.probes[name] = probe
        return probe

    def ready(self) -> bool:
        return all(p.up for p in self.probes.values() if p.required)

    def report(self) -> dict[str, dict[str, object]]:
        return {name: probe.report() for name, probe in self.probes.items()}

    async def run(self) -> None:
        """Until cancelled; cancelling stops every component."""
        tasks = [asyncio.create_task(self._keep(name), name=name) for name in self._work]
        try:
            await asyncio.wait(tasks)  # components never end by themselves
        finally:
            # Each cancelled once, so that one stopping gracefully is not interrupted.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _keep(self, name: str) -> None:
        probe, work = self.probes[name], self._work[name]
        retries = self.backoff.retries()
        while True:
            started = time.monotonic()
            try:
                await work(probe)
                error = "returned"
            except asyncio.CancelledError:
                probe.down("stopped")
                raise
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                retries.ran_for(time.monotonic() - started)
                log.exception(
                    "component failed; restarting", component=name, delay_s=retries.next_delay
                )
            else:
                retries.ran_for(time.monotonic() - started)
                log.error("component ended; restarting", component=name, delay_s=retries.next_delay)
            probe.down(error)
            await retries.wait()
            probe.restarts += 1
            RESTARTS.labels(name).set(probe.restarts)
