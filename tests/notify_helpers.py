"""Helpers for notification tests: the real notifier in a thread, incidents opened and changed
through the incidents package as the rules consumer and the API do."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from hub.contracts import Priority
from hub.db import connect
from hub.supervisor import Probe
from incidents.actions import apply_action
from incidents.models import ActionIn, Incident, NewIncident
from incidents.opening import open_or_attach
from incidents.sla import Sla
from notify.sender import SenderConfig
from notify.service import NotifyConfig, run_notifier
from tests.eventually import eventually
from tests.threads import in_background

SECRET = b"notify-test-secret"
PUBLIC = "https://hub.example.cn"


@contextmanager
def running_notifier(
    database_url: str, *, secret: bytes = SECRET, **sender: Any
) -> Iterator[Probe]:
    """The real notifier; `secret`: the hub's key, where unit links must open in the API."""
    config = NotifyConfig(
        database_url=database_url,
        sender=SenderConfig(public_url=PUBLIC, secret=secret,
                            first_retry=sender.pop("first_retry", timedelta(seconds=0.5)),
                            **sender),
        tick_s=0.2,
    )  # fmt: skip
    probe = Probe("notify")
    with in_background(lambda: run_notifier(config, probe), lambda: probe.up, what="notifier"):
        yield probe


def open_incident(
    database_url: str, area: str, *, title: str = "烟感报警 3栋", building: str = "3栋",
    priority: Priority = Priority.EMERGENCY, category: str = "fire_safety",
    lat: float | None = None, lon: float | None = None, evidence: list[Any] | None = None,
) -> Incident:  # fmt: skip
    now = datetime.now(UTC)
    new = NewIncident(
        rule_id="smoke-alarm", rule_version=1, group_key=f"area={area}|b={building}|{title}",
        category=category, priority=priority, area=area, site="楼村花园", building=building,
        title=title, first_signal_at=now, last_signal_at=now, lat=lat, lon=lon,
        evidence=evidence or [],
    )  # fmt: skip

    async def run() -> Incident:
        conn = await connect(database_url)
        async with conn, conn.transaction():
            incident, _ = await open_or_attach(conn, new, now=now, sla=Sla())
            return incident

    return asyncio.run(run())


def act(database_url: str, incident_id: int, action: str, **fields: Any) -> Incident:
    async def run() -> Incident:
        conn = await connect(database_url)
        async with conn, conn.transaction():
            return await apply_action(
                conn, incident_id, ActionIn(action=action, **fields), actor="dispatcher",
                scope="", now=datetime.now(UTC),
            )  # fmt: skip

    return asyncio.run(run())


def notifications(database_url: str, **where: Any) -> list[dict[str, Any]]:
    clause = " AND ".join(f"{k} = %({k})s" for k in where) or "true"
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        return conn.execute(
            f"SELECT * FROM notifications WHERE {clause} ORDER BY id", where
        ).fetchall()


def wait_settled(database_url: str, timeout: float = 20) -> None:
    """Wait until the notifier has handled every incident event and finished every
    notification it made of them: what it has not sent by then, it never will. (The proof it
    ran, before a test says something was not sent.)"""

    def unfinished() -> tuple[int, int]:
        with psycopg.connect(database_url) as conn:
            row = conn.execute(
                "SELECT (SELECT count(*) FROM incident_events WHERE handled_at IS NULL),"
                " (SELECT count(*) FROM notifications WHERE status IN ('pending', 'sending'))"
            ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    eventually(unfinished, lambda left: left == (0, 0), timeout=timeout,
               what="(unhandled events, unsent notifications) to reach (0, 0)")  # fmt: skip


def wait_until(check: Any, timeout: float = 20, every: float = 0.1) -> Any:
    """`check()` once it gives something truthy."""
    return eventually(check, timeout=timeout, every=every)
