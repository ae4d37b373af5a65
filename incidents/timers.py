"""The incidents' timers, every few seconds: SLA escalation up the area hierarchy, and 吹哨报到's
overdue report-ins and owed ratings. A component of their own, for incidents whatever opened
them (a rule, a report, a resident); each timer covers one area prefix, and several may run
side by side (SKIP LOCKED)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg
from psycopg.rows import DictRow

from hub.db import open_pool
from hub.logs import get_logger
from hub.settings import Settings
from hub.supervisor import Probe
from incidents.escalation import escalate_overdue
from incidents.sla import Sla
from incidents.summon_sweep import raise_overdue, remind_ratings

log = get_logger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


async def _sweep_summons(
    conn: psycopg.AsyncConnection[DictRow], now: datetime, sla: Sla, area_prefix: str
) -> None:
    async with conn.transaction():
        late = await raise_overdue(conn, now, area_prefix=area_prefix)
        await remind_ratings(conn, now, sla, area_prefix=area_prefix)
    for item in late:
        log.info(
            "summoned unit overdue",
            incident=item.incident_id,
            unit=item.unit_id,
            parent=item.parent_id,
        )


@dataclass(frozen=True)
class TimersConfig:
    database_url: str
    sla: Sla = field(default_factory=Sla)
    area_prefix: str = ""  # the incidents whose area starts so
    interval_s: float = 5.0

    @classmethod
    def from_settings(cls, settings: Settings, *, area_prefix: str = "") -> TimersConfig:
        assert settings.database_url, "resolve the services first"
        return cls(settings.database_url, Sla.from_settings(settings), area_prefix)


async def run_timers(
    config: TimersConfig, probe: Probe, *, clock: Callable[[], datetime] = _now
) -> None:
    """Runs until cancelled; a database outage skips ticks (and says so) instead of ending.
    Each tick takes a checked connection from a pool of one, so a connection the database
    dropped (a restart) is replaced before it is used, never found dead a tick later while
    readiness still says up."""
    pool = await open_pool(config.database_url, min_size=1, max_size=1)
    try:
        while True:
            try:
                async with pool.connection() as conn:
                    await _tick(conn, clock(), config.sla, config.area_prefix)
                probe.ready()
            except psycopg.OperationalError as exc:  # PoolTimeout is one too
                probe.down(f"database: {type(exc).__name__}")
                log.warning("escalation tick skipped", error=str(exc))
            await asyncio.sleep(config.interval_s)
    finally:
        await pool.close()


async def _tick(
    conn: psycopg.AsyncConnection[DictRow], now: datetime, sla: Sla, area_prefix: str
) -> None:
    async with conn.transaction():
        done = await escalate_overdue(conn, now, sla, area_prefix=area_prefix)
    await _sweep_summons(conn, now, sla, area_prefix)
    for item in done:
        log.info(
            "incident escalated", incident=item.incident_id, to=item.to_area, reason=item.reason
        )
