"""/api/v1/stats/today, the wall's figures, over real HTTP and PostgreSQL: alarms (signals) by
kind and hour against yesterday's, today's incidents and their 办结率 and on-time acceptance,
open incidents by whistle whenever they opened, devices and cameras online; all within the
token's area."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import psycopg

from incidents.today import day_before, hourly_counts, midnight
from tests.conftest import TokenFactory
from tests.test_registry_api import COMMUNITY, register_area

ELSEWHERE = "440305001001"
SHANGHAI = ZoneInfo("Asia/Shanghai")  # the hub's zone in the suite (SB_TIMEZONE's default)


def signal(conn: psycopg.Connection, kind: str, ts: datetime, area: str = COMMUNITY) -> None:
    conn.execute(
        "INSERT INTO signals (ts, kind, source_id, source_type, area) VALUES (%s, %s, 'SD-1',"
        " 'smoke_sensor', %s)",
        (ts, kind, area),
    )


def incident(client: httpx.Client, priority: str, area: str = COMMUNITY) -> int:
    created = client.post(
        "/api/v1/incidents",
        json={"category": "fire", "priority": priority, "title": "楼道起火", "area": area},
    )
    assert created.status_code == 201, created.text
    incident_id: int = created.json()["id"]
    return incident_id


def seed(admin: httpx.Client, database_url: str) -> datetime:
    """Three incidents today (one accepted, one closed), an open one from yesterday, one in
    another district; alarm and quiet signals today and yesterday; devices, one online."""
    register_area(admin)
    register_area(admin, ELSEWHERE, "南山社区")
    accepted = incident(admin, "emergency")
    assert admin.post(f"/api/v1/incidents/{accepted}/actions", json={"action": "accept"}).is_success
    closed = incident(admin, "routine")
    assert admin.post(
        f"/api/v1/incidents/{closed}/actions", json={"action": "close", "reason": "false_alarm"}
    ).is_success
    incident(admin, "major")
    incident(admin, "emergency", ELSEWHERE)
    for body in (
        {"id": "SD-1", "type": "smoke_sensor", "area": COMMUNITY},
        {"id": "SD-2", "type": "smoke_sensor", "area": COMMUNITY},
        {"id": "SD-OFF", "type": "smoke_sensor", "area": COMMUNITY},
        {"id": "SD-FAR", "type": "smoke_sensor", "area": ELSEWHERE},
    ):
        assert admin.post("/api/v1/devices", json=body).status_code == 201
    assert admin.patch("/api/v1/devices/SD-OFF", json={"enabled": False}).is_success
    camera = {"id": "CAM-1", "area": COMMUNITY, "stream_url": "rtsp://127.0.0.1:8554/c"}
    assert admin.post("/api/v1/cameras", json=camera).status_code == 201
    now = datetime.now(UTC)
    yesterday = now - timedelta(days=1)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO device_state (device_id, last_seen, online) VALUES ('SD-1', now(), true),"
            " ('SD-FAR', now(), true), ('SD-2', now() - interval '1 day', false)"
        )
        for kind in ("smoke_alarm", "smoke_alarm", "intrusion", "device_online", "smoke_test"):
            signal(conn, kind, now)
        signal(conn, "smoke_alarm", now, ELSEWHERE)
        signal(conn, "smoke_alarm", yesterday)
        conn.execute(
            "INSERT INTO incidents (group_key, category, priority, status, area, title,"
            " created_at, updated_at, accept_by, resolve_by, accept_deadline, resolve_deadline,"
            " first_signal_at, last_signal_at) VALUES ('old', 'fire', 'major', 'reported', %s,"
            " '昨天的', %s, %s, %s, %s, %s, %s, %s, %s)",
            (COMMUNITY, *[yesterday] * 8),
        )
    return now


def test_todays_figures_for_the_wall(
    admin: httpx.Client, database_url: str, client_for: TokenFactory
) -> None:
    now = seed(admin, database_url)
    today = admin.get("/api/v1/stats/today").json()
    local = now.astimezone(SHANGHAI)
    assert today["day"] == local.date().isoformat()
    assert datetime.fromisoformat(today["start"]) == datetime.combine(
        local.date(), datetime.min.time(), SHANGHAI
    )
    assert today["alarms_by_kind"] == {"smoke_alarm": 3, "intrusion": 1}  # two districts
    assert today["alarms"] == 4
    assert today["alarms_hourly"]["today"][local.hour] == 4
    assert today["alarms_hourly"]["today"][local.hour + 1 :] == [None] * (23 - local.hour)
    assert today["alarms_hourly"]["yesterday"][local.hour] == 1
    figures = today["incidents"]
    assert (figures["opened"], figures["closed"]) == (4, 1)
    assert figures["closure_rate"] == 0.25
    assert (figures["accept_determined"], figures["accepted_on_time"]) == (2, 2)
    assert figures["on_time_accept_rate"] == 1.0
    assert figures["opened_by_category"] == {"fire": 4}
    assert figures["open_by_priority"] == {"emergency": 2, "major": 2, "routine": 0}
    assert figures["open_total"] == 4
    assert figures["hourly"]["today"][local.hour] == 4
    assert figures["hourly"]["yesterday"][local.hour] == 1
    assert today["devices"] == {"online": 2, "total": 3}  # the disabled one left out
    assert today["cameras"] == {"online": 0, "total": 1}

    mine = client_for("viewer", COMMUNITY).get("/api/v1/stats/today").json()
    assert mine["alarms_by_kind"] == {"smoke_alarm": 2, "intrusion": 1}
    assert (mine["incidents"]["opened"], mine["incidents"]["closure_rate"]) == (3, 1 / 3)
    assert mine["incidents"]["open_by_priority"] == {"emergency": 1, "major": 2, "routine": 0}
    assert mine["devices"] == {"online": 1, "total": 2}
    narrowed = admin.get("/api/v1/stats/today", params={"area": ELSEWHERE}).json()
    assert narrowed["incidents"]["open_total"] == 1 and narrowed["alarms"] == 1


def test_a_quiet_day_has_no_rates(admin: httpx.Client) -> None:
    register_area(admin)
    today = admin.get("/api/v1/stats/today").json()
    assert today["alarms"] == 0 and today["alarms_by_kind"] == {}
    assert today["incidents"]["closure_rate"] is None
    assert today["incidents"]["on_time_accept_rate"] is None
    assert today["incidents"]["open_by_priority"] == {"emergency": 0, "major": 0, "routine": 0}
    assert today["devices"] == today["cameras"] == {"online": 0, "total": 0}


def test_hours_and_days_by_the_hubs_clock_across_a_daylight_saving_change() -> None:
    """Not Shanghai's problem, but SB_TIMEZONE may name a zone with DST: yesterday's midnight
    is 25 hours back after the clocks went back, and hours fall into the right day."""
    zone = ZoneInfo("America/New_York")
    now = datetime(2026, 11, 2, 15, 30, tzinfo=zone)  # the day after the change
    start = midnight(now, zone)
    assert start == datetime(2026, 11, 2, tzinfo=zone)
    assert start.astimezone(UTC) - day_before(start, zone).astimezone(UTC) == timedelta(hours=25)
    rows = [
        {"day": date(2026, 11, 2), "hour": 15, "n": 2},
        {"day": date(2026, 11, 2), "hour": 15, "n": 1},  # another kind, the same hour
        {"day": date(2026, 11, 1), "hour": 1, "n": 4},
        {"day": date(2026, 10, 31), "hour": 1, "n": 9},  # neither day: left out
    ]
    hourly = hourly_counts(rows, now)
    assert hourly.today[15] == 3 and hourly.today[16:] == [None] * 8
    assert hourly.yesterday[1] == 4 and sum(hourly.yesterday) == 4
