"""Running a component's coroutine in a thread with its own event loop, for tests that drive
it from synchronous code."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def in_background(
    work: Callable[[], Coroutine[Any, Any, None]],
    ready: Callable[[], bool],
    *,
    what: str,
    timeout: float = 20,
) -> Iterator[None]:
    """Start `work()` in a thread; yield once `ready()` holds; cancel it on leaving."""
    loop = asyncio.new_event_loop()
    task: asyncio.Task[None] | None = None

    def run() -> None:
        nonlocal task
        asyncio.set_event_loop(loop)
        task = loop.create_task(work())
        with contextlib.suppress(asyncio.CancelledError):
            loop.run_until_complete(task)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline and thread.is_alive(), f"{what} did not start"
        time.sleep(0.02)
    try:
        yield
    finally:
        if task is not None:
            loop.call_soon_threadsafe(task.cancel)
        thread.join(timeout=15)
