"""uvicorn as one component of a process that handles its own signals."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from hub.supervisor import Probe

GRACEFUL_S = 10  # open requests get this long to finish when the process stops


class EmbeddedServer(uvicorn.Server):
    """The process, not uvicorn, owns SIGTERM and SIGINT: it stops every component, then
    its embedded services, in order."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def run_server(config: uvicorn.Config, probe: Probe) -> None:
    """Serve until cancelled, then shut down gracefully (open requests finish, the app's
    lifespan closes its pool). A port that cannot be bound ends the process: uvicorn says why
    and exits."""
    if config.timeout_graceful_shutdown is None:
        config.timeout_graceful_shutdown = GRACEFUL_S
    server = EmbeddedServer(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                await task  # raises what stopped it
                return
            await asyncio.sleep(0.02)
        probe.ready()
        await asyncio.shield(task)
    except asyncio.CancelledError:
        server.should_exit = True
        while not task.done():  # let it finish its shutdown, even if cancelled again
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(task)
        raise
