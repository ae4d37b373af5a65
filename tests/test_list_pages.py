"""Rules, silences, routes and channels are listed in pages of `{"items", "next"}` like every
other list (design §6): each item once across the pages, in the order the list says, within
the caller's area; a cursor this API did not return is a 422."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.test_notify import channel, route
from tests.test_registry_api import COMMUNITY, register_area
from tests.test_rules import DESIGN_EXAMPLE

OTHER_DISTRICT = "440312001001"
COUNT = 5


def walk(client: httpx.Client, path: str, **params: Any) -> list[dict[str, Any]]:
    """Every item of a list, two a page, following `next`."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(50):
        response = client.get(path, params={"limit": 2, **params,
                                            **({"cursor": cursor} if cursor else {})})  # fmt: skip
        assert response.status_code == 200, response.text
        page = response.json()
        assert set(page) == {"items", "next"} and len(page["items"]) <= 2
        items += page["items"]
        cursor = page["next"]
        if cursor is None:
            return items
    raise AssertionError(f"{path} never ended")


def fill(admin: httpx.Client) -> dict[str, list[Any]]:
    """COUNT of each, in our community; the ids each list should give, in its order."""
    now = datetime.now(UTC)
    silences = []
    for i in range(COUNT):
        made = admin.post("/api/v1/silences", json={
            "matcher": {"kind": ["smoke_alarm"], "area_prefix": COMMUNITY}, "reason": f"演练 {i}",
            "starts_at": (now - timedelta(minutes=1)).isoformat(),
            "ends_at": (now + timedelta(hours=1 + i)).isoformat()})  # fmt: skip
        assert made.status_code == 201, made.text
        silences.append(made.json()["id"])
    for i in range(COUNT):
        rule = {**DESIGN_EXAMPLE, "id": f"rule-{i}",
                "match": {"kind": ["smoke_alarm"], "where": {"area_prefix": COMMUNITY}}}  # fmt: skip
        assert admin.post("/api/v1/rules", json=rule).status_code == 201
        channel(admin, id=f"ch-{i}", kind="webhook", url="https://hooks.example.com/x")
    for i in range(COUNT):
        route(admin, id=f"route-{i}", channels=[f"ch-{i}"])
    return {
        "/api/v1/silences": sorted(silences, reverse=True),  # newest first
        "/api/v1/rules": [f"rule-{i}" for i in range(COUNT)],
        "/api/v1/channels": [f"ch-{i}" for i in range(COUNT)],
        "/api/v1/routes": [f"route-{i}" for i in range(COUNT)],
    }


def test_rules_silences_routes_and_channels_come_in_pages(
    admin: httpx.Client, client_for: Any
) -> None:
    register_area(admin)
    register_area(admin, OTHER_DISTRICT, "别区社区")
    expected = fill(admin)
    for path, ids in expected.items():
        assert [item["id"] for item in walk(admin, path)] == ids, path
        whole = admin.get(path).json()
        assert ([i["id"] for i in whole["items"]], whole["next"]) == (ids, None)
    assert [s["id"] for s in walk(admin, "/api/v1/silences", active="true")] == expected[
        "/api/v1/silences"]  # fmt: skip
    assert all(not c["has_secret"] and "secret" not in c for c in walk(admin, "/api/v1/channels"))
    for role, paths in (("operator", ("/api/v1/rules", "/api/v1/silences", "/api/v1/routes")),
                        ("integrator", ("/api/v1/channels",))):  # fmt: skip
        elsewhere = client_for(role, OTHER_DISTRICT)
        for path in paths:
            assert elsewhere.get(path).json() == {"items": [], "next": None}, (role, path)


def test_a_cursor_the_api_did_not_give_is_a_422(admin: httpx.Client) -> None:
    tampered = [base64.urlsafe_b64encode(b"\x00\x00").decode(), "%%%", "YWJj" * 40,
                base64.urlsafe_b64encode(b"\xff").decode()]  # fmt: skip
    for path in ("/api/v1/rules", "/api/v1/silences", "/api/v1/routes", "/api/v1/channels"):
        for cursor in tampered:
            response = admin.get(path, params={"cursor": cursor})
            assert response.status_code == 422, (path, cursor, response.text)
            assert response.json()["error"]["code"] == "validation_error"
        assert admin.get(path, params={"limit": 0}).status_code == 422
        assert admin.get(path, params={"limit": 501}).status_code == 422
    not_a_number = base64.urlsafe_b64encode(b"abc").decode()
    assert admin.get("/api/v1/silences", params={"cursor": not_a_number}).status_code == 422
