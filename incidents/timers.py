"""The incident timers of a rules process: SLA escalation every few seconds."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import psycopg

from hub.db import connect
from hub.logs import get_logger
from hub.supervisor import Probe
from incidents.escalation import escalate_overdue
from incidents.sla import Sla

log = get_logger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


async def run_timers(
    database_url: str,
    sla: Sla,
    probe: Probe,
    *,
    area_prefix: str = "",
    interval: float = 5.0,
    clock: Callable[[], datetime] = _now,
) -> None:
    """Runs until cancelled; a database outage skips ticks (and says so) instead of ending."""
    while True:
        try:
            conn = await connect(database_url)
            async with conn:
                while True:
                    async with conn.transaction():
                        done = await escalate_overdue(conn, clock(), sla, area_prefix=area_prefix)
                    probe.ready()
                    for item in done:
                        log.info("incident escalated", incident=item.incident_id,
                                 to=item.to_area, reason=item.reason)  # fmt: skip
                    await asyncio.sleep(interval)
        except psycopg.OperationalError as exc:
            probe.down(f"database: {type(exc).__name__}")
            log.warning("escalation tick skipped", error=str(exc))
            await asyncio.sleep(interval)
