"""Text people type refuses bidirectional controls (U+202E and kin), wherever it enters: a
title, a note, a name shown on the console or in a notification must read as it is stored.
Each refusal is a 422 naming the field, and nothing of the refused request is kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from hub.text import BIDI_CONTROLS
from tests.test_registry_api import COMMUNITY, register_area
from tests.test_reports import intake_key
from tests.test_rules import DESIGN_EXAMPLE

# Each bidirectional control, spelled out so that this file shows none of them.
CONTROLS = ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068",
            "\u2069", "\u200e", "\u200f", "\u061c"]  # fmt: skip


def spoof(control: str = "\u202e") -> str:
    """What reads as `invoice.jpg` on screen but is `invoice.exe` backwards."""
    return f"发票{control}gpj.exe"


def refused(response: httpx.Response, field: str) -> None:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert any(f["field"].endswith(field) for f in error["fields"]), error
    assert "bidirectional" in error["message"], error


def test_the_list_is_every_bidirectional_control() -> None:
    assert set(CONTROLS) == BIDI_CONTROLS and len(CONTROLS) == 12


@pytest.mark.parametrize("control", CONTROLS, ids=lambda c: f"U+{ord(c):04X}")
def test_each_control_is_refused_in_an_incident_title(admin: httpx.Client, control: str) -> None:
    register_area(admin)
    body = {"category": "public_safety", "title": spoof(control), "area": COMMUNITY}
    refused(admin.post("/api/v1/incidents", json=body), "title")
    assert admin.get("/api/v1/incidents").json()["items"] == []


CHANNEL = {"id": "station-robot", "name": "值班群", "kind": "webhook", "area": COMMUNITY,
           "url": "https://hooks.example/abc"}  # fmt: skip
SILENCE = {"matcher": {"kind": ["smoke_alarm"], "area_prefix": COMMUNITY},
           "starts_at": datetime.now(UTC).isoformat(),
           "ends_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat(), "reason": "消防演练"}  # fmt: skip
CASES: list[tuple[str, str, dict[str, Any], str]] = [
    # (path, listing path, body with the spoof at `field`, field)
    ("/api/v1/units", "/api/v1/units",
     {"id": "GW-9", "name": "X", "kind": "grid_worker", "area": COMMUNITY}, "name"),
    ("/api/v1/devices", "/api/v1/devices",
     {"id": "SD-9", "type": "smoke_sensor", "area": COMMUNITY, "building": "X"}, "building"),
    ("/api/v1/devices", "/api/v1/devices",
     {"id": "SD-9", "type": "smoke_sensor", "area": COMMUNITY, "tags": {"room": "X"}}, "room"),
    ("/api/v1/areas", "/api/v1/areas", {"code": "440311001009", "name": "X"}, "name"),
    ("/api/v1/tokens", "/api/v1/tokens",
     {"name": "X", "role": "viewer", "area_prefix": COMMUNITY}, "name"),
    ("/api/v1/channels", "/api/v1/channels", {**CHANNEL, "name": "X"}, "name"),
    ("/api/v1/intake-keys", "/api/v1/intake-keys", {"area": COMMUNITY, "name": "X"}, "name"),
    ("/api/v1/watchlists", "/api/v1/watchlists", {"name": "w", "label": "X"}, "label"),
    ("/api/v1/silences", "/api/v1/silences", {**SILENCE, "reason": "X"}, "reason"),
    ("/api/v1/rules", "/api/v1/rules", {**DESIGN_EXAMPLE, "name": "X"}, "name"),
    ("/api/v1/rules", "/api/v1/rules",
     {**DESIGN_EXAMPLE, "incident": {**DESIGN_EXAMPLE["incident"], "title": "X"}}, "title"),
]  # fmt: skip


def _with_spoof(value: Any) -> Any:
    if value == "X":
        return spoof()
    if isinstance(value, dict):
        return {k: _with_spoof(v) for k, v in value.items()}
    return value


def _listed(admin: httpx.Client, path: str) -> Any:
    listed = admin.get(path).json()
    return listed["items"] if isinstance(listed, dict) else listed


@pytest.mark.parametrize(("path", "listing", "body", "field"), CASES,
                         ids=[f"{c[0]}:{c[3]}" for c in CASES])  # fmt: skip
def test_names_and_labels_refuse_them(
    admin: httpx.Client, path: str, listing: str, body: dict[str, Any], field: str
) -> None:
    register_area(admin)
    before = _listed(admin, listing)
    refused(admin.post(path, json=_with_spoof(body)), field)
    assert _listed(admin, listing) == before
    taken = admin.post(path, json=body)  # the same body, plain
    assert taken.status_code == 201, taken.text


def test_notes_comments_and_residents_text_refuse_them(
    admin: httpx.Client, client_for: Any
) -> None:
    register_area(admin)
    incident = admin.post("/api/v1/incidents", json={
        "category": "public_safety", "title": "井盖缺失", "area": COMMUNITY}).json()  # fmt: skip
    actions = f"/api/v1/incidents/{incident['id']}/actions"
    refused(admin.post(actions, json={"action": "comment", "note": spoof("\u2067")}), "note")
    refused(admin.post(actions, json={"action": "accept", "note": spoof("\u200f")}), "note")
    assert admin.get(f"/api/v1/incidents/{incident['id']}").json()["status"] == "reported"
    assert [e["action"] for e in admin.get(f"/api/v1/incidents/{incident['id']}/audit").json()] == [
        "report"]  # fmt: skip
    refused(admin.patch(f"/api/v1/areas/{COMMUNITY}", json={"name": spoof("\u061c")}), "name")

    key = intake_key(admin)
    resident = {"category": "public_safety", "title": "路灯不亮", "note": spoof("\u202d")}
    refused(admin.post("/api/v1/public/reports", json=resident, headers={"X-Intake-Key": key}),
            "note")  # fmt: skip
    assert admin.get("/api/v1/incidents?source=public").json()["items"] == []
    csv = f"id,type,area,site\nSD-1,smoke_sensor,{COMMUNITY},{spoof()}\n"
    imported = admin.post("/api/v1/devices/import", content=csv.encode(),
                          headers={"content-type": "text/csv"})  # fmt: skip
    assert imported.status_code in (200, 422), imported.text
    assert admin.get("/api/v1/devices").json()["items"] == []
    assert "bidirectional" in imported.text
