"""Budgets per client over a sliding window: failed authentications (so that guessing tokens
is slow) and the public intake's requests (so that a flood cannot bury a community's desk).

A client (by address, as the proxy reports it) that spends its budget within the window gets
429 with Retry-After until its oldest spending leaves the window, whatever it sends
meanwhile. Kept in each API process: behind a load balancer a client's budget is per
replica, which still bounds it to a few a second.
"""

from __future__ import annotations

import math
import time
from collections import deque

from hub.errors import TooManyRequests

MAX_FAILURES = 20
WINDOW_S = 10.0
_MAX_CLIENTS = 100_000  # forget the least recent beyond this many


class ClientBudget:
    def __init__(self, limit: int, window_s: float, *, what: str) -> None:
        self.limit = limit
        self.window_s = window_s
        self.what = what
        self._failures: dict[str, deque[float]] = {}

    def check(self, client: str) -> None:
        """Raise TooManyRequests while `client` is over its budget."""
        failures = self._recent(client, time.monotonic())
        if failures is not None and len(failures) >= self.limit:
            wait = failures[0] + self.window_s - time.monotonic()
            raise TooManyRequests(
                f"too many {self.what}; try again in {math.ceil(wait)} s",
                retry_after=max(1, math.ceil(wait)),
            )

    def spend(self, client: str) -> None:
        now = time.monotonic()
        failures = self._recent(client, now)
        if failures is None:
            if len(self._failures) >= _MAX_CLIENTS:
                self._failures.pop(next(iter(self._failures)))
            failures = self._failures[client] = deque()
        failures.append(now)

    failed = spend

    def _recent(self, client: str, now: float) -> deque[float] | None:
        failures = self._failures.get(client)
        if failures is None:
            return None
        while failures and failures[0] <= now - self.window_s:
            failures.popleft()
        if not failures:
            del self._failures[client]
            return None
        return failures


class FailedAuthentications(ClientBudget):
    def __init__(self, limit: int = MAX_FAILURES, window_s: float = WINDOW_S) -> None:
        super().__init__(limit, window_s, what="failed authentications")
