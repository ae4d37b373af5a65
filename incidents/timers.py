"""The incident timers a hub process runs: SLA escalation every few seconds."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import psycopg

from hub.db import connect
from hub.logs import get_logger
from incidents.escalation import escalate_overdue

log = get_logger(__name__)


async def run_timers(database_url: str, *, interval: float = 5.0) -> None:
    """Runs until cancelled; a database outage skips ticks instead of stopping the loop."""
    while True:
        try:
            conn = await connect(database_url)
            async with conn, conn.transaction():
                escalated = await escalate_overdue(conn, datetime.now(UTC))
            for item in escalated:
                log.info(
                    "incident escalated",
                    incident=item.incident_id,
                    to=item.to_area,
                    reason=item.reason,
                )
        except psycopg.OperationalError as exc:
            log.warning("escalation tick skipped", error=str(exc))
        await asyncio.sleep(interval)
