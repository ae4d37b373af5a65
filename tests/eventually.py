"""Waiting for something to happen, the one way the suite does it: poll until a deadline.

A fixed sleep either wastes time (the thing happened long before) or makes a test flaky (on a
loaded machine it had not happened yet). `eventually` returns as soon as the condition holds,
and when it never does, the failure names what was awaited and the last value seen."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def eventually(
    read: Callable[[], T],
    ok: Callable[[T], Any] = bool,
    *,
    timeout: float = 20,
    every: float = 0.1,
    what: str | None = None,
) -> T:
    """Call `read()` until `ok(value)` is truthy (by default: until the value is); return that
    value. After `timeout` seconds, fail with `what` (default: `read`'s name) and the last
    value. An exception from `read` or `ok` ends the wait at once: it is the test's failure."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if ok(value):
            return value
        if time.monotonic() >= deadline:
            awaited = what or getattr(read, "__qualname__", repr(read))
            raise AssertionError(
                f"not within {timeout:g} s: {awaited}; last value: {value!r}"[:4000]
            )
        time.sleep(every)
