"""Each role × each endpoint × inside and outside its area, over real HTTP.

Tokens are scoped to street 440311001. Street 440311002 is "outside". Roles outside the
endpoint's writers get 403; reads outside the scope are 404 (existence is not leaked);
writes naming an outside area are 403.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, issue

INSIDE_STREET, OUTSIDE_STREET = "440311001", "440311002"
INSIDE, OUTSIDE = "440311001002", "440311002001"
ROLES = ("admin", "integrator", "operator", "dispatcher", "viewer")
EVERYONE = set(ROLES)
REGISTRY = {"admin", "integrator"}
ZONES = {"admin", "integrator", "operator"}
UNITS = {"admin", "integrator", "dispatcher"}
_ids = itertools.count()


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: Callable[[str], str]  # area -> path (ids of fixtures in that area)
    allowed: set[str]
    body: Callable[[str], Any] | None = None
    ok: int = 200
    outside: int = 404  # what an allowed role gets for the other street


def device(area: str) -> str:
    return "SD-IN" if area == INSIDE else "SD-OUT"


def camera(area: str) -> str:
    return "CAM-IN" if area == INSIDE else "CAM-OUT"


def unit(area: str) -> str:
    return "U-IN" if area == INSIDE else "U-OUT"


def new_id(prefix: str) -> str:
    return f"{prefix}-{next(_ids)}"


ZONE = {"name": "z", "kind": "crowd", "polygon": [[0.1, 0.1], [0.9, 0.1], [0.5, 0.9]]}
CASES = [
    Case("list areas", "GET", lambda a: f"/api/v1/areas/{a}", EVERYONE),
    Case(
        "create area",
        "POST",
        lambda a: "/api/v1/areas",
        REGISTRY,
        body=lambda a: {"code": a[:9] + f"{next(_ids) % 900 + 100:03d}", "name": "n"},
        ok=201,
        outside=403,
    ),
    Case("read device", "GET", lambda a: f"/api/v1/devices/{device(a)}", EVERYONE),
    Case(
        "register device",
        "POST",
        lambda a: "/api/v1/devices",
        REGISTRY,
        body=lambda a: {"id": new_id("D"), "type": "smoke_sensor", "area": a},
        ok=201,
        outside=403,
    ),
    Case(
        "update device",
        "PATCH",
        lambda a: f"/api/v1/devices/{device(a)}",
        REGISTRY,
        body=lambda a: {"site": "s"},
    ),
    Case(
        "rotate credentials", "POST", lambda a: f"/api/v1/devices/{device(a)}/credentials", REGISTRY
    ),
    Case("read camera", "GET", lambda a: f"/api/v1/cameras/{camera(a)}", EVERYONE),
    Case(
        "register camera",
        "POST",
        lambda a: "/api/v1/cameras",
        REGISTRY,
        body=lambda a: {"id": new_id("C"), "area": a, "stream_url": "rtsp://h/1"},
        ok=201,
        outside=403,
    ),
    Case(
        "set zones",
        "PUT",
        lambda a: f"/api/v1/cameras/{camera(a)}/zones",
        ZONES,
        body=lambda a: {"zones": [ZONE]},
    ),
    Case("read unit", "GET", lambda a: f"/api/v1/units/{unit(a)}", EVERYONE),
    Case(
        "create unit",
        "POST",
        lambda a: "/api/v1/units",
        UNITS,
        body=lambda a: {"id": new_id("U"), "name": "n", "kind": "police", "area": a},
        ok=201,
        outside=403,
    ),
    Case(
        "unit off duty",
        "PATCH",
        lambda a: f"/api/v1/units/{unit(a)}",
        UNITS,
        body=lambda a: {"on_duty": False},
    ),
    Case(
        "issue token",
        "POST",
        lambda a: "/api/v1/tokens",
        {"admin"},
        body=lambda a: {"name": "t", "role": "viewer", "area_prefix": a},
        ok=201,
        outside=403,
    ),
]


@pytest.fixture(scope="module")
def world(api_url: str, database_url: str) -> Iterator[dict[str, httpx.Client]]:
    """Two streets with a device, camera and unit each, and one client per role."""
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("TRUNCATE areas, devices, cameras, units, api_tokens RESTART IDENTITY CASCADE")
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with httpx.Client(base_url=api_url, headers=headers) as root:
        for street, community in ((INSIDE_STREET, INSIDE), (OUTSIDE_STREET, OUTSIDE)):
            assert (
                root.post("/api/v1/areas", json={"code": street, "name": street}).status_code == 201
            )
            assert (
                root.post("/api/v1/areas", json={"code": community, "name": community}).status_code
                == 201
            )
            root.post(
                "/api/v1/devices",
                json={"id": device(community), "type": "smoke_sensor", "area": community},
            )
            root.post(
                "/api/v1/cameras",
                json={"id": camera(community), "area": community, "stream_url": "rtsp://h/1"},
            )
            root.post(
                "/api/v1/units",
                json={"id": unit(community), "name": "n", "kind": "police", "area": community},
            )
    clients = {
        role: httpx.Client(
            base_url=api_url,
            headers={"Authorization": f"Bearer {issue(api_url, role, INSIDE_STREET)}"},
        )
        for role in ROLES
    }
    yield clients
    for client in clients.values():
        client.close()


@pytest.mark.parametrize("where", ["inside", "outside"])
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_matrix(world: dict[str, httpx.Client], case: Case, role: str, where: str) -> None:
    area = INSIDE if where == "inside" else OUTSIDE
    body = case.body(area) if case.body else None
    response = world[role].request(case.method, case.path(area), json=body)
    if role not in case.allowed:
        expected = 403
    elif where == "inside":
        expected = case.ok
    else:
        expected = case.outside
    assert response.status_code == expected, response.text
    if expected >= 400:
        assert response.json()["error"]["code"] in {"forbidden", "not_found"}


@pytest.mark.parametrize("role", ROLES)
def test_listings_never_show_the_other_street(world: dict[str, httpx.Client], role: str) -> None:
    client = world[role]
    for path in ("/api/v1/areas", "/api/v1/devices", "/api/v1/cameras", "/api/v1/units"):
        items = client.get(path, params={"limit": 500}).json()["items"]
        assert items, path
        areas = {item.get("area", item.get("code")) for item in items}
        assert all(a.startswith(INSIDE_STREET) for a in areas), (path, areas)
    outside = client.get("/api/v1/devices", params={"area": OUTSIDE_STREET}).json()["items"]
    assert outside == []


def test_deletes_respect_role_and_area(world: dict[str, httpx.Client]) -> None:
    viewer, integrator = world["viewer"], world["integrator"]
    assert viewer.delete(f"/api/v1/devices/{device(INSIDE)}").status_code == 403
    assert integrator.delete(f"/api/v1/devices/{device(OUTSIDE)}").status_code == 404
    assert integrator.delete(f"/api/v1/units/{unit(OUTSIDE)}").status_code == 404
    assert integrator.delete(f"/api/v1/areas/{OUTSIDE}").status_code == 404


def test_moving_a_device_out_of_scope_is_refused(world: dict[str, httpx.Client]) -> None:
    response = world["integrator"].patch(
        f"/api/v1/devices/{device(INSIDE)}", json={"area": OUTSIDE}
    )
    assert response.status_code == 403
    assert response.json()["error"]["field"] == "area"


def test_token_admin_sees_only_tokens_in_scope(world: dict[str, httpx.Client]) -> None:
    tokens = world["admin"].get("/api/v1/tokens").json()
    assert tokens and all(t["area_prefix"].startswith(INSIDE_STREET) for t in tokens)
    wider = world["admin"].post("/api/v1/tokens", json={"name": "all", "role": "admin"})
    assert wider.status_code == 403
