"""Liveness and readiness, the same for every process: `/healthz` and `/readyz`.

`/healthz` answers while the process's event loop does (an orchestrator restarts a process
that stops answering). `/readyz` is 200 only when the database answers and every component
of the process is up (a consumer connected to its broker, a rules partition consuming), and
503 otherwise, with each part's state, so a load balancer stops sending work meanwhile. A
part the process can do without (vision in `shaobing up`) is reported with its reason
(`"required": false`) without making the process unready.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from hub.supervisor import Supervisor

DATABASE_TIMEOUT_S = 2.0


def liveness(process: str) -> dict[str, Any]:
    return {"status": "ok", "process": process}


async def readiness(
    process: str, supervisors: Sequence[Supervisor], check_database: Callable[[], Awaitable[None]]
) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body)."""
    try:
        await asyncio.wait_for(check_database(), DATABASE_TIMEOUT_S)
        database = "ok"
    except Exception as exc:  # any failure means "not ready", which is the answer
        database = type(exc).__name__
    components: dict[str, Any] = {}
    for supervisor in supervisors:
        components.update(supervisor.report())
    ready = database == "ok" and all(c["up"] for c in components.values() if c["required"])
    body = {
        "status": "ok" if ready else "unavailable",
        "process": process,
        "database": database,
        "components": components,
    }
    return (200 if ready else 503), body
