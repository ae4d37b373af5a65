"""Area boundaries and building footprints over real HTTP and PostgreSQL: each form of GeoJSON
taken and stored as one MultiPolygon, each kind of broken shape refused with a 422 that names
it, and reads and writes kept within the token's area as every other read and write is."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import TokenFactory
from tests.test_registry_api import COMMUNITY, assert_error, register_area

STREET = COMMUNITY[:9]
DISTRICT = COMMUNITY[:6]
NEIGHBOUR = "440311002001"  # a community of another street of the same district
# A square around 楼村 (lon, lat), and a smaller one inside it.
SQUARE = [[113.92, 22.77], [113.94, 22.77], [113.94, 22.79], [113.92, 22.79], [113.92, 22.77]]
INNER = [[113.925, 22.775], [113.93, 22.775], [113.93, 22.78], [113.925, 22.775]]
EAST = [[113.95, 22.77], [113.96, 22.77], [113.96, 22.78], [113.95, 22.77]]


def polygon(*rings: list[list[float]]) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": list(rings)}


def feature(geometry: dict[str, Any], **properties: Any) -> dict[str, Any]:
    return {"type": "Feature", "geometry": geometry, "properties": properties}


@pytest.fixture
def areas(admin: httpx.Client) -> httpx.Client:
    for code, name in (
        (DISTRICT, "光明区"),
        (STREET, "光明街道"),
        (COMMUNITY, "楼村社区"),
        (NEIGHBOUR[:9], "公明街道"),
        (NEIGHBOUR, "上村社区"),
    ):
        register_area(admin, code, name)
    return admin


def put(client: httpx.Client, code: str, body: Any) -> httpx.Response:
    return client.put(f"/api/v1/areas/{code}/boundary", json=body)


@pytest.mark.parametrize(
    ("body", "parts"),
    [
        (polygon(SQUARE), 1),
        (polygon(SQUARE, INNER), 1),  # a hole
        ({"type": "MultiPolygon", "coordinates": [[SQUARE], [EAST]]}, 2),
        (feature(polygon(SQUARE), name="楼村"), 1),
        (
            {
                "type": "FeatureCollection",
                "features": [feature(polygon(SQUARE)), feature(polygon(EAST))],
            },
            2,
        ),
    ],
    ids=["Polygon", "Polygon with a hole", "MultiPolygon", "Feature", "FeatureCollection"],
)
def test_each_form_of_geojson_is_stored_as_one_multipolygon(
    areas: httpx.Client, body: dict[str, Any], parts: int
) -> None:
    stored = put(areas, COMMUNITY, body)
    assert stored.status_code == 200, stored.text
    boundary = stored.json()["boundary"]
    assert boundary["type"] == "MultiPolygon"
    assert len(boundary["coordinates"]) == parts
    assert boundary["coordinates"][0][0] == SQUARE
    read = areas.get(f"/api/v1/areas/{COMMUNITY}/boundary").json()
    assert read == stored.json()
    assert read["name"] == "楼村社区" and read["level"] == "community"


def test_altitudes_are_dropped_and_a_second_upload_replaces_the_first(areas: httpx.Client) -> None:
    assert put(areas, COMMUNITY, polygon([[*p, 12.5] for p in SQUARE])).status_code == 200
    assert areas.get(f"/api/v1/areas/{COMMUNITY}/boundary").json()["boundary"]["coordinates"] == [
        [SQUARE]
    ]
    assert put(areas, COMMUNITY, polygon(EAST)).status_code == 200
    assert areas.get(f"/api/v1/areas/{COMMUNITY}/boundary").json()["boundary"]["coordinates"] == [
        [EAST]
    ]


BOWTIE = [[113.92, 22.77], [113.94, 22.79], [113.94, 22.77], [113.92, 22.79], [113.92, 22.77]]
OUTSIDE = [[113.99, 22.70], [113.995, 22.70], [113.995, 22.705], [113.99, 22.70]]
OVERLAPPING = [[113.93, 22.78], [113.95, 22.78], [113.95, 22.80], [113.93, 22.78]]


@pytest.mark.parametrize(
    ("body", "needle", "where"),
    [
        (polygon(SQUARE[:2] + SQUARE[:1]), "at least 4 positions", "coordinates.0"),
        (polygon(SQUARE[:4]), "not closed", "coordinates.0"),
        (polygon(BOWTIE), "crosses itself: self-intersection at [113.93, 22.78]", "coordinates.0"),
        (
            polygon([[113.92, 22.77], [113.93, 22.77], [113.94, 22.77], [113.92, 22.77]]),
            "encloses no area",
            "coordinates.0",
        ),
        (polygon([[200, 22.77], *SQUARE[1:4], [200, 22.77]]), "longitude 200", "coordinates.0.0"),
        (polygon([[lat, lon] for lon, lat in SQUARE]), "latitude 113.92", "coordinates.0.0"),
        (polygon([[113.92], *SQUARE[1:]]), "got 1 number", "coordinates.0.0"),
        (polygon([["113.92", 22.77], *SQUARE[1:]]), "valid number", "coordinates.0.0.0"),
        (polygon(SQUARE, OUTSIDE), "hole lies outside shell", "coordinates"),
        (
            {"type": "MultiPolygon", "coordinates": [[SQUARE], [OVERLAPPING]]},
            "overlap",
            "coordinates",
        ),
        (
            {
                "type": "FeatureCollection",
                "features": [feature(polygon(SQUARE)), feature(polygon(OVERLAPPING))],
            },
            "overlap",
            "FeatureCollection",
        ),
        ({"type": "FeatureCollection", "features": []}, "at least 1", "features"),
        (polygon(), "at least 1", "coordinates"),
        ({"type": "Point", "coordinates": [113.93, 22.78]}, "'Point'", "body"),
        (feature({"type": "LineString", "coordinates": SQUARE}), "'LineString'", "geometry"),
    ],
    ids=[
        "too few positions",
        "unclosed ring",
        "self-intersecting ring",
        "ring without area",
        "longitude out of range",
        "latitude and longitude swapped",
        "position of one number",
        "coordinate not a number",
        "hole outside its polygon",
        "overlapping polygons",
        "overlapping features",
        "no features",
        "no rings",
        "a point",
        "a feature of a line",
    ],
)
def test_a_shape_the_map_cannot_draw_is_refused_naming_the_problem(
    areas: httpx.Client, body: dict[str, Any], needle: str, where: str
) -> None:
    refused = put(areas, COMMUNITY, body)
    assert_error(refused, 422, "validation_error", needle)
    assert any(where in f["field"] for f in refused.json()["error"]["fields"]), refused.text
    assert areas.get(f"/api/v1/areas/{COMMUNITY}/boundary").status_code == 404  # nothing kept


def test_nan_is_not_a_coordinate(areas: httpx.Client) -> None:
    text = '{"type": "Polygon", "coordinates": [[[NaN, 22.77], [113.94, 22.77], [113.94, 22.79],'
    text += " [NaN, 22.77]]]}"
    refused = areas.put(
        f"/api/v1/areas/{COMMUNITY}/boundary",
        content=text,
        headers={"Content-Type": "application/json"},
    )
    assert_error(refused, 422, "validation_error", "longitude nan")


def test_a_street_sets_its_own_and_its_communities_boundaries_and_no_one_elses(
    areas: httpx.Client, client_for: TokenFactory
) -> None:
    street = client_for("operator", STREET)
    assert put(street, STREET, polygon(SQUARE)).status_code == 200
    assert put(street, COMMUNITY, polygon(INNER)).status_code == 200
    for elsewhere in (NEIGHBOUR, NEIGHBOUR[:9], DISTRICT):
        assert_error(put(street, elsewhere, polygon(EAST)), 404, "not_found", elsewhere)
    assert put(areas, NEIGHBOUR, polygon(EAST)).status_code == 200
    assert_error(street.get(f"/api/v1/areas/{NEIGHBOUR}/boundary"), 404, "not_found")
    assert_error(street.delete(f"/api/v1/areas/{NEIGHBOUR}/boundary"), 404, "not_found")
    viewer = client_for("viewer", STREET)
    assert_error(put(viewer, COMMUNITY, polygon(SQUARE)), 403, "forbidden")
    assert viewer.get(f"/api/v1/areas/{COMMUNITY}/boundary").status_code == 200

    layer = street.get("/api/v1/boundaries").json()
    assert layer["type"] == "FeatureCollection"
    assert [(f["properties"]["code"], f["properties"]["name"]) for f in layer["features"]] == [
        (STREET, "光明街道"),
        (COMMUNITY, "楼村社区"),
    ]
    everything = areas.get("/api/v1/boundaries").json()["features"]
    assert {f["properties"]["code"] for f in everything} == {STREET, COMMUNITY, NEIGHBOUR}
    only = areas.get("/api/v1/boundaries", params={"area": NEIGHBOUR[:9]}).json()["features"]
    assert [f["properties"]["name"] for f in only] == ["上村社区"]


def test_a_boundary_is_deleted_alone_or_with_its_area(areas: httpx.Client) -> None:
    assert put(areas, COMMUNITY, polygon(SQUARE)).status_code == 200
    assert areas.delete(f"/api/v1/areas/{COMMUNITY}/boundary").status_code == 204
    assert_error(areas.get(f"/api/v1/areas/{COMMUNITY}/boundary"), 404, "not_found", "no boundary")
    assert_error(
        areas.delete(f"/api/v1/areas/{COMMUNITY}/boundary"), 404, "not_found", "no boundary"
    )
    assert put(areas, NEIGHBOUR, polygon(EAST)).status_code == 200
    assert areas.delete(f"/api/v1/areas/{NEIGHBOUR}").status_code == 204
    assert areas.get("/api/v1/boundaries").json()["features"] == []


def buildings(*named: tuple[str, list[list[float]]]) -> dict[str, Any]:
    return {
        "type": "FeatureCollection",
        "features": [feature(polygon(ring), name=name, floors=18) for name, ring in named],
    }


def test_a_community_keeps_its_buildings_with_their_names(
    areas: httpx.Client, client_for: TokenFactory
) -> None:
    body = buildings(("5栋", INNER), ("6栋", EAST))
    stored = areas.put(f"/api/v1/areas/{COMMUNITY}/buildings", json=body)
    assert stored.status_code == 200, stored.text
    assert [b["name"] for b in stored.json()["buildings"]] == ["5栋", "6栋"]
    assert stored.json()["buildings"][0]["geometry"] == {
        "type": "MultiPolygon",
        "coordinates": [[INNER]],
    }
    assert areas.get(f"/api/v1/areas/{COMMUNITY}/buildings").json() == stored.json()
    assert put(areas, COMMUNITY, polygon(SQUARE)).status_code == 200
    layer = client_for("viewer", STREET).get("/api/v1/boundaries").json()["features"]
    assert [(f["properties"]["kind"], f["properties"]["name"]) for f in layer] == [
        ("area", "楼村社区"),
        ("building", "5栋"),
        ("building", "6栋"),
    ]
    assert client_for("viewer", NEIGHBOUR).get("/api/v1/boundaries").json()["features"] == []
    assert areas.delete(f"/api/v1/areas/{COMMUNITY}/buildings").status_code == 204
    assert_error(
        areas.get(f"/api/v1/areas/{COMMUNITY}/buildings"), 404, "not_found", "no buildings"
    )


@pytest.mark.parametrize(
    ("code", "body", "needle", "where"),
    [
        (STREET, buildings(("1栋", INNER)), "belong to a community", "code"),
        (
            COMMUNITY,
            {"type": "FeatureCollection", "features": [feature(polygon(INNER))]},
            "Field required",
            "properties.name",
        ),
        (COMMUNITY, buildings(("", INNER)), "at least 1", "name"),
        (COMMUNITY, buildings(("1栋", SQUARE[:4])), "not closed", "coordinates.0"),
    ],
    ids=["a street", "no name", "empty name", "unclosed ring"],
)
def test_buildings_without_a_name_or_outside_a_community_are_refused(
    areas: httpx.Client, code: str, body: dict[str, Any], needle: str, where: str
) -> None:
    refused = areas.put(f"/api/v1/areas/{code}/buildings", json=body)
    assert_error(refused, 422, "validation_error", needle)
    assert any(where in f["field"] for f in refused.json()["error"]["fields"]), refused.text


def test_the_openapi_document_says_what_a_boundary_upload_can_answer(
    areas: httpx.Client,
) -> None:
    operation = areas.get("/openapi.json").json()["paths"]["/api/v1/areas/{code}/boundary"]["put"]
    assert {"200", "401", "403", "404", "413", "415", "422"} <= set(operation["responses"])
    assert "crossing itself" in operation["responses"]["422"]["description"]
