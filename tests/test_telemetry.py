"""/devices/{id}/telemetry: buckets on plain PostgreSQL (date_bin), through the real API."""

from __future__ import annotations

import httpx
import psycopg

from tests.telemetry_data import START, sample_readings
from tests.test_registry_api import COMMUNITY, assert_error, register_area


def test_hourly_and_daily_buckets(admin: httpx.Client, database_url: str) -> None:
    register_area(admin)
    admin.post("/api/v1/devices", json={"id": "SD-T", "type": "smoke_sensor", "area": COMMUNITY})
    rows = sample_readings("SD-T")
    with psycopg.connect(database_url) as conn:
        conn.cursor().executemany(
            "INSERT INTO readings (ts, device_id, metric, value) VALUES (%s, %s, %s, %s)", rows
        )
    params = {
        "from": START.isoformat(),
        "to": "2026-11-23T00:00:00Z",
        "bucket": "1d",
        "metric": "smoke",
    }
    daily = admin.get("/api/v1/devices/SD-T/telemetry", params=params)
    assert daily.status_code == 200, daily.text
    days = daily.json()
    assert [d["bucket"][:10] for d in days] == ["2026-11-20", "2026-11-21", "2026-11-22"]
    smoke = [r for r in rows if r[2] == "smoke"]
    assert sum(d["count"] for d in days) == len(smoke)
    assert min(d["min"] for d in days) == min(r[3] for r in smoke)
    hourly = admin.get("/api/v1/devices/SD-T/telemetry", params={**params, "bucket": "1h"}).json()
    assert len(hourly) == 72 and {h["metric"] for h in hourly} == {"smoke"}
    unfiltered = {k: v for k, v in params.items() if k != "metric"}
    both = admin.get("/api/v1/devices/SD-T/telemetry", params=unfiltered).json()
    assert {b["metric"] for b in both} == {"smoke", "battery_pct"}


def test_bad_ranges_and_buckets(admin: httpx.Client) -> None:
    register_area(admin)
    admin.post("/api/v1/devices", json={"id": "SD-T", "type": "smoke_sensor", "area": COMMUNITY})
    url = "/api/v1/devices/SD-T/telemetry"
    base = {"from": "2026-11-20T00:00:00Z", "to": "2026-11-21T00:00:00Z"}
    assert_error(
        admin.get(url, params={**base, "bucket": "5 minutes"}), 422, "validation_error", "30s, 5m"
    )
    assert_error(admin.get(url, params={**base, "bucket": "40d"}), 422, "validation_error", "31d")
    assert_error(
        admin.get(url, params={**base, "bucket": "1s"}), 422, "validation_error", "10000 buckets"
    )
    backwards = {"from": base["to"], "to": base["from"]}
    assert_error(admin.get(url, params=backwards), 422, "validation_error", "after")
    assert_error(admin.get(url, params={"to": base["to"]}), 422, "validation_error", "query.from")
    assert_error(admin.get("/api/v1/devices/NOPE/telemetry", params=base), 404, "not_found")
