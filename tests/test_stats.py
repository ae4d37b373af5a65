"""/api/v1/stats on incidents with known timings."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest

from hub.contracts import Priority
from hub.db import connect
from incidents.actions import apply_action
from incidents.models import ActionIn, NewIncident
from incidents.opening import open_or_attach
from incidents.sla import Sla
from tests.test_incidents import NOW
from tests.test_registry_api import COMMUNITY, register_area

OTHER = "440311001003"


def scenario(database_url: str) -> None:
    """Four incidents: accepted after 30 s / 10 min, one never accepted, one false alarm."""

    async def run() -> None:
        conn = await connect(database_url)
        async with conn:

            async def new(key: str, priority: str, category: str, area: str) -> int:
                incident, _ = await open_or_attach(
                    conn,
                    NewIncident(
                        rule_id="r",
                        rule_version=1,
                        group_key=key,
                        category=category,
                        priority=Priority(priority),
                        area=area,
                        title=key,
                        first_signal_at=NOW,
                        last_signal_at=NOW,
                    ),
                    now=NOW,
                    sla=Sla(),
                )
                return incident.id

            async def do(incident_id: int, after: timedelta, **action: Any) -> None:
                await apply_action(
                    conn, incident_id, ActionIn(**action), actor="t", scope="", now=NOW + after
                )

            a = await new("a", "major", "fire", COMMUNITY)
            await do(a, timedelta(seconds=30), action="accept")
            await do(a, timedelta(minutes=20), action="close", reason="resolved")
            await do(a, timedelta(minutes=21), action="rate", rating=4)
            b = await new("b", "major", "fire", COMMUNITY)
            await do(b, timedelta(minutes=10), action="accept")  # late: major allows 5 min
            await new("c", "routine", "maintenance", OTHER)  # never accepted (and overdue now)
            d = await new("d", "emergency", "fire", OTHER)
            await do(d, timedelta(seconds=50), action="accept")
            await do(d, timedelta(minutes=2), action="close", reason="false_alarm")
            await do(d, timedelta(minutes=3), action="rate", rating=2)

    asyncio.run(run())


@pytest.fixture
def stats_of(admin: httpx.Client, database_url: str) -> Any:
    register_area(admin)
    register_area(admin, OTHER, "另一社区")
    scenario(database_url)

    def get(**params: str) -> dict[str, Any]:
        span = {
            "from": (NOW - timedelta(hours=1)).isoformat(),
            "to": (NOW + timedelta(days=1)).isoformat(),
        }
        response = admin.get("/api/v1/stats", params={**span, **params})
        assert response.status_code == 200, response.text
        return response.json()

    return get


def test_overall_figures(stats_of: Any) -> None:
    [all_] = stats_of()["groups"]
    assert all_["total"] == 4
    assert all_["by_status"] == {"closed": 2, "accepted": 1, "reported": 1}
    assert all_["closure_rate"] == 0.5
    # On time: a (30 s of 5 min) and d (50 s of 1 min); late: b; overdue, never accepted: c.
    assert all_["on_time_accept_rate"] == 0.5
    assert all_["accept_mean_s"] == pytest.approx((30 + 600 + 50) / 3)
    assert all_["close_mean_s"] == pytest.approx((20 * 60 + 2 * 60) / 2)
    assert all_["mean_rating"] == 3.0


def test_grouped_and_filtered(stats_of: Any) -> None:
    by_category = {g["key"]: g for g in stats_of(group_by="category")["groups"]}
    assert {k: g["total"] for k, g in by_category.items()} == {"fire": 3, "maintenance": 1}
    assert by_category["maintenance"]["on_time_accept_rate"] == 0.0
    by_area = {g["key"]: g["total"] for g in stats_of(group_by="area")["groups"]}
    assert by_area == {COMMUNITY: 2, OTHER: 2}
    emergency = stats_of(priority="emergency")["groups"]
    assert [(g["total"], g["closure_rate"]) for g in emergency] == [(1, 1.0)]
    assert stats_of(area="440311002")["groups"] == []


def test_scope_and_bad_ranges(stats_of: Any, client_for: Any) -> None:
    scoped = client_for("viewer", COMMUNITY)
    span = {
        "from": (NOW - timedelta(hours=1)).isoformat(),
        "to": (NOW + timedelta(days=1)).isoformat(),
    }
    [only] = scoped.get("/api/v1/stats", params=span).json()["groups"]
    assert only["total"] == 2
    backwards = scoped.get("/api/v1/stats", params={"from": span["to"], "to": span["from"]})
    assert backwards.status_code == 422
    assert scoped.get("/api/v1/stats", params={**span, "group_by": "colour"}).status_code == 422
