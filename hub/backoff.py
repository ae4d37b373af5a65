"""Waiting between tries, one way for the whole hub: exponential backoff.

A `Backoff` is the policy: the first wait, doubled after each failure in a row up to a
ceiling. `delay(n)` is the wait after the nth failure in a row, for schedules kept in the
database (a notification's next attempt); `retries()` counts failures for a loop that
reconnects or restarts (`failed()` → the wait, `succeeded()` → start over). The supervisor
restarts components with one, and so does every reconnect loop; SIP's retransmission timers
are RFC 3261's own and psycopg_pool keeps its own for pool connections.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

_MAX_DOUBLINGS = 64  # far past any ceiling; keeps 2**n a float


@dataclass(frozen=True)
class Backoff:
    first_s: float = 0.5
    max_s: float = 30.0
    # A run that lasted this long counts as recovered: its next failure waits `first_s`.
    reset_after_s: float = 60.0

    def delay(self, failures: int) -> float:
        """The wait after `failures` failures in a row (one or none: `first_s`)."""
        doublings = min(max(failures - 1, 0), _MAX_DOUBLINGS)
        return min(self.first_s * 2.0**doublings, self.max_s)

    def retries(self) -> Retries:
        return Retries(self)


@dataclass
class Retries:
    """One loop's failures in a row, and the wait each calls for."""

    backoff: Backoff
    failures: int = 0

    def failed(self) -> float:
        """Count a failure; returns the seconds to wait before trying again."""
        self.failures += 1
        return self.backoff.delay(self.failures)

    @property
    def next_delay(self) -> float:
        """The wait the next failure will call for."""
        return self.backoff.delay(self.failures + 1)

    def succeeded(self) -> None:
        self.failures = 0

    def ran_for(self, seconds: float) -> None:
        """A run (of a component, say) that lasted `reset_after_s` counts as a success."""
        if seconds >= self.backoff.reset_after_s:
            self.failures = 0

    async def wait(self) -> float:
        """Count a failure and sleep its wait; returns the seconds slept."""
        delay = self.failed()
        await asyncio.sleep(delay)
        return delay
