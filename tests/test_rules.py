"""Rules: validation that names the field, JSON and YAML, versions, built-ins, scope."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import httpx
import pytest

from hub.db import connect
from rules.store import seed_builtin_rules

DESIGN_EXAMPLE: dict[str, Any] = {
    "id": "smoke-alarm-confirmed",
    "name": "Smoke alarm confirmed by a camera in the same building",
    "enabled": True,
    "match": {"kind": ["smoke_alarm"], "where": {"area_prefix": "440311", "min_confidence": 0.0}},
    "threshold": {"count": 1, "within": "60s"},
    "for": "0s",
    "group_by": ["building"],
    "confirm": {"kind": ["camera_smoke", "camera_fire"], "within": "120s", "same": "building",
                "priority": "emergency"},
    "schedule": {"days": "mon-sun", "hours": "00:00-24:00", "tz": "Asia/Shanghai"},
    "incident": {"category": "fire", "priority": "major",
                 "title": "Smoke alarm at {site} {building}", "dispatch": "nearest"},
    "cooldown": "10m",
}  # fmt: skip


def seed(database_url: str) -> int:
    async def run() -> int:
        conn = await connect(database_url)
        async with conn:
            return await seed_builtin_rules(conn)

    return asyncio.run(run())


def test_design_example_round_trips(admin: httpx.Client) -> None:
    created = admin.post("/api/v1/rules", json=DESIGN_EXAMPLE)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["version"] == 1 and body["builtin"] is False
    stored = body["document"]
    assert stored["for"] == "0s" and stored["confirm"]["priority"] == "emergency"
    assert {k: stored[k] for k in ("id", "group_by", "cooldown")} == {
        "id": "smoke-alarm-confirmed", "group_by": ["building"], "cooldown": "10m",
    }  # fmt: skip
    assert admin.post("/api/v1/rules", json=DESIGN_EXAMPLE).status_code == 409


def test_yaml_upload(admin: httpx.Client) -> None:
    text = """
id: night-intrusion-gate
name: Intrusion at the north gate at night
match:
  any:
    - kind: [intrusion]
      where: {zone: gate-north}
    - kind: [loitering]
threshold: {count: 2, within: 5m}
for: 30s
schedule: {days: fri-mon, hours: "22:00-06:00", tz: Asia/Shanghai}
incident: {category: security, priority: major, title: "Intrusion at {site} ({zone})"}
"""
    response = admin.post(
        "/api/v1/rules", content=text.encode(), headers={"content-type": "application/yaml"}
    )
    assert response.status_code == 201, response.text
    assert response.json()["document"]["match"]["any"][0]["where"]["zone"] == "gate-north"
    broken = admin.post(
        "/api/v1/rules", content=b"id: [unclosed", headers={"content-type": "application/yaml"}
    )
    assert broken.status_code == 422 and "YAML" in broken.json()["error"]["message"]


def _with(path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(DESIGN_EXAMPLE)
    target = doc
    keys = path.split(".")
    for key in keys[:-1]:
        target = target[key]
    target[keys[-1]] = value
    return doc


@pytest.mark.parametrize(
    ("path", "value", "field", "needle"),
    [
        (
            "match.kind",
            ["smoke_alarm", "meteor_strike"],
            "body.match",
            "unknown signal kind 'meteor_strike'",
        ),
        ("threshold.within", "a minute", "body.threshold.within", "duration"),
        ("cooldown", "45d", "body.cooldown", "longer than 30 days"),
        ("for", "-5s", "body.for", "duration"),
        ("schedule.hours", "25:00-26:00", "body.schedule", "not a time of day"),
        ("schedule.hours", "08:00-08:00", "body.schedule", "empty window"),
        ("schedule.days", "monday-friday", "body.schedule", "mon..sun"),
        ("schedule.tz", "Mars/Olympus", "body.schedule", "IANA"),
        ("incident.priority", "urgent", "body.incident.priority", "emergency"),
        ("incident.title", "Alarm at {street}", "body.incident", "unknown placeholder"),
        ("group_by", ["floor"], "body.group_by.0", "building"),
        ("threshold.count", 0, "body.threshold.count", "greater than or equal to 1"),
        ("confirm.same", "city", "body.confirm.same", "building"),
        ("colour", "red", "body.colour", "Extra inputs"),
        ("id", "Bad Id", "body.id", "pattern"),
    ],
)
def test_bad_rules_name_the_field(
    admin: httpx.Client, path: str, value: Any, field: str, needle: str
) -> None:
    response = admin.post("/api/v1/rules", json=_with(path, value))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    fields = [f["field"] for f in error["fields"]]
    assert any(f.startswith(field) for f in fields), fields
    assert needle in error["message"], error["message"]
    assert admin.get("/api/v1/rules").json() == {"items": [], "next": None}


def test_every_change_is_a_version(admin: httpx.Client) -> None:
    admin.post("/api/v1/rules", json=DESIGN_EXAMPLE)
    changed = _with("cooldown", "20m")
    replaced = admin.put("/api/v1/rules/smoke-alarm-confirmed", json=changed)
    assert replaced.status_code == 200 and replaced.json()["version"] == 2
    disabled = admin.patch("/api/v1/rules/smoke-alarm-confirmed", json={"enabled": False})
    assert disabled.json()["version"] == 3 and disabled.json()["enabled"] is False
    history = admin.get("/api/v1/rules/smoke-alarm-confirmed/versions").json()
    assert [(v["version"], v["document"]["cooldown"], v["document"]["enabled"]) for v in history] == [
        (1, "10m", True), (2, "20m", True), (3, "20m", False),
    ]  # fmt: skip
    assert history[0]["changed_by"] == "SB_ADMIN_TOKEN"
    mismatch = admin.put("/api/v1/rules/smoke-alarm-confirmed", json=_with("id", "other-rule"))
    assert mismatch.status_code == 422
    assert admin.get("/api/v1/rules", params={"enabled": "true"}).json()["items"] == []
    assert admin.delete("/api/v1/rules/smoke-alarm-confirmed").status_code == 204
    assert admin.get("/api/v1/rules/smoke-alarm-confirmed").status_code == 404


def test_builtins_are_seeded_once_and_editable_not_deletable(
    admin: httpx.Client, database_url: str
) -> None:
    assert seed(database_url) == 14
    assert seed(database_url) == 0
    ids = {r["id"] for r in admin.get("/api/v1/rules").json()["items"]}
    assert ids == {
        "smoke-alarm", "confirmed-fire", "camera-fire", "watchlist-hit", "invalid-id",
        "intrusion-night", "crowd", "fall", "fire-lane-blocked", "ebike-in-elevator",
        "device-offline", "low-battery", "tamper", "gb-alarm-input",
    }  # fmt: skip
    off = admin.patch("/api/v1/rules/crowd", json={"enabled": False})
    assert off.status_code == 200 and off.json()["builtin"] is True
    assert seed(database_url) == 0  # an edited built-in is left alone
    assert admin.get("/api/v1/rules/crowd").json()["enabled"] is False
    refused = admin.delete("/api/v1/rules/crowd")
    assert refused.status_code == 409 and "disable" in refused.json()["error"]["message"]


def test_roles_and_area_scope(admin: httpx.Client, client_for: Any, database_url: str) -> None:
    seed(database_url)
    street = _with("match.where.area_prefix", "440311001")
    street["id"] = "street-rule"
    operator = client_for("operator", "440311001")
    assert operator.post("/api/v1/rules", json=street).status_code == 201
    assert operator.post("/api/v1/rules", json=DESIGN_EXAMPLE).status_code == 403  # wider
    # Built-in rules cover every area: a street operator sees them but may not change them.
    assert operator.get("/api/v1/rules/smoke-alarm").status_code == 200
    assert operator.patch("/api/v1/rules/smoke-alarm", json={"enabled": False}).status_code == 403
    other = client_for("operator", "440311002")
    assert other.get("/api/v1/rules/street-rule").status_code == 404
    viewer = client_for("viewer", "")
    assert viewer.get("/api/v1/rules/street-rule").status_code == 200
    assert viewer.post("/api/v1/rules", json=street).status_code == 403
    assert client_for("integrator", "").delete("/api/v1/rules/street-rule").status_code == 403
