"""The wall (大屏) and the map (一张图) in Chromium against the real hub: the wall fills a
1920×1080 and a 3840×2160 screen without scrolling, in type sized to the screen, with the
figures /stats/today gives, and follows a new incident without a reload; the map draws the
uploaded boundaries and buildings with their names and gathers twelve incidents at one gate
into one marker that says 12. The wall at 1920×1080 and the map are saved to docs/ for the
README."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests import test_console as console
from tests.conftest import issue
from tests.eventually import eventually
from tests.test_registry_api import COMMUNITY, register_area

pytestmark = console.pytestmark
browser = console.browser  # the same fixtures as the console's other pages
world = console.world
DOCS = Path(__file__).resolve().parent.parent / "docs"
STREET = COMMUNITY[:9]
GATE = (22.7801, 113.9301)  # 楼村花园's gate: twelve incidents there
NORTH = (22.7885, 113.9215)  # one more, a kilometre away


def square(lon: float, lat: float, half: float) -> list[list[float]]:
    corners = [(-1, -1), (1, -1), (1, 1), (-1, 1), (-1, -1)]
    return [[round(lon + dx * half, 6), round(lat + dy * half, 6)] for dx, dy in corners]


@pytest.fixture
def outlined(world: httpx.Client, database_url: str) -> httpx.Client:
    """The street and the community outlined, two buildings, thirteen open incidents (twelve
    at the gate, one of them accepted), one closed, and three smoke alarms today."""
    register_area(world, COMMUNITY[:6], "光明区")
    register_area(world, STREET, "光明街道")
    outlines = {
        STREET: {"type": "Polygon", "coordinates": [square(113.93, 22.78, 0.03)]},
        COMMUNITY: {
            "type": "Feature",
            "properties": {"name": "楼村"},
            "geometry": {"type": "Polygon", "coordinates": [square(113.93, 22.78, 0.012)]},
        },
    }
    for code, body in outlines.items():
        assert world.put(f"/api/v1/areas/{code}/boundary", json=body).status_code == 200
    buildings = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"name": name},
                "geometry": {"type": "Polygon", "coordinates": [square(lon, lat, 0.0006)]},
            }
            for name, lon, lat in (("5栋", 113.9316, 22.7801), ("6栋", 113.9332, 22.7812))
        ],
    }
    assert world.put(f"/api/v1/areas/{COMMUNITY}/buildings", json=buildings).status_code == 200
    for n in range(11):
        new_incident(world, "major" if n < 2 else "routine", f"楼道堆物 {n + 1}", GATE)
    accepted = new_incident(world, "major", "电动车充电", GATE)
    assert world.post(f"/api/v1/incidents/{accepted}/actions", json={"action": "accept"}).is_success
    closed = new_incident(world, "routine", "误报的烟感", GATE)
    assert world.post(
        f"/api/v1/incidents/{closed}/actions", json={"action": "close", "reason": "false_alarm"}
    ).is_success
    new_incident(world, "emergency", "北门起火", NORTH)
    with psycopg.connect(database_url, autocommit=True) as conn:
        for _ in range(3):
            conn.execute(
                "INSERT INTO signals (ts, kind, source_id, source_type, area) VALUES (now(),"
                " 'smoke_alarm', 'SD-UI', 'smoke_sensor', %s)",
                (COMMUNITY,),
            )
    return world


def new_incident(client: httpx.Client, priority: str, title: str, at: tuple[float, float]) -> int:
    created = client.post(
        "/api/v1/incidents",
        json={
            "category": "fire_safety",
            "priority": priority,
            "title": title,
            "area": COMMUNITY,
            "lat": at[0],
            "lon": at[1],
        },
    )
    assert created.status_code == 201, created.text
    incident_id: int = created.json()["id"]
    return incident_id


def shown_figures(page: Any) -> dict[str, str]:
    found: dict[str, str] = page.evaluate(
        "Object.fromEntries([...document.querySelectorAll('[data-figure]')].map("
        "e => [e.dataset.figure, e.querySelector('.value').textContent.trim()]))"
    )
    return found


def rate(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def api_figures(reader: httpx.Client) -> dict[str, str]:
    """What the wall should show, from the API."""
    today = reader.get("/api/v1/stats/today").json()
    figures = today["incidents"]
    return {
        "alarms": str(today["alarms"]),
        **{w: str(n) for w, n in figures["open_by_priority"].items()},
        "closure": rate(figures["closure_rate"]),
        "onTime": rate(figures["on_time_accept_rate"]),
        "devices": f"{today['devices']['online']}/{today['devices']['total']}",
        "cameras": f"{today['cameras']['online']}/{today['cameras']['total']}",
    }


def figures_match(page: Any, reader: httpx.Client) -> dict[str, str]:
    pair = eventually(
        lambda: (shown_figures(page), api_figures(reader)),
        lambda p: p[0] == p[1],
        timeout=20,
        what="the wall's figures to be the API's",
    )
    return pair[0]


def nothing_scrolls(page: Any) -> None:
    size = page.evaluate(
        "({h: document.scrollingElement.scrollHeight, w: document.scrollingElement.scrollWidth,"
        " ih: innerHeight, iw: innerWidth})"
    )
    assert size["h"] <= size["ih"] and size["w"] <= size["iw"], size
    # and nothing inside is cut off: every figure whole, every listed incident on screen
    clipped = page.evaluate(
        "[...document.querySelectorAll('.figure')].filter(e => e.scrollWidth > e.clientWidth"
        " || e.getBoundingClientRect().bottom > innerHeight).map(e => [e.dataset.figure,"
        " e.scrollWidth, e.clientWidth, e.getBoundingClientRect().bottom])"
    )
    assert clipped == []
    lowest = page.evaluate(
        "Math.max(...[...document.querySelectorAll('.rows li')].map("
        "e => e.getBoundingClientRect().bottom))"
    )
    assert lowest <= size["ih"]


@pytest.mark.parametrize(("width", "height"), [(1920, 1080), (3840, 2160)])
def test_the_wall_fills_the_screen_with_the_apis_figures_and_follows_a_new_incident(
    outlined: httpx.Client, browser: Any, api_url: str, width: int, height: int
) -> None:
    token = issue(api_url, "dispatcher", COMMUNITY[:6])
    reader = httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {token}"})
    page = browser.new_page(
        locale="zh-CN", timezone_id="Asia/Shanghai", viewport={"width": width, "height": height}
    )
    console.login(browser, api_url, token, page=page)
    page.goto(f"{api_url}/wall")
    page.wait_for_selector("[data-testid=wall] >> text=实时")
    assert page.query_selector("[data-testid=who]") is None  # no console bar on the wall
    figures = figures_match(page, reader)
    assert figures["alarms"] == "3" and figures["emergency"] == "1"
    assert figures["closure"] == "7.1%"  # 1 closed of 14 opened today
    page.wait_for_selector(".sb-cluster[data-count='12']")
    page.wait_for_selector(".sb-area-label:has-text('楼村社区')")
    page.wait_for_function("document.querySelectorAll('.rows [data-incident-id]').length === 13")
    assert page.inner_text("[data-testid=wall-scope]") == "光明区"
    nothing_scrolls(page)
    unit = height / 45  # the type grows with the screen: legible from 5 m on either
    sizes = page.evaluate(
        "({base: parseFloat(getComputedStyle(document.querySelector('.wall')).fontSize),"
        " value: parseFloat(getComputedStyle(document.querySelector('.figure .value')).fontSize),"
        " row: parseFloat(getComputedStyle(document.querySelector('.rows .title')).fontSize)})"
    )
    assert sizes["base"] == pytest.approx(unit)
    assert sizes["value"] >= 2 * unit and sizes["row"] >= 0.85 * unit
    page.wait_for_selector("canvas")  # the ECharts charts
    if width == 1920:
        page.screenshot(path=str(DOCS / "console-wall.png"))
    else:
        console.shot(page, "wall-3840x2160")

    fresh = new_incident(outlined, "emergency", "新的火情", NORTH)
    page.wait_for_selector(f".rows [data-incident-id='{fresh}']")
    figures = figures_match(page, reader)
    assert figures["emergency"] == "2"
    nothing_scrolls(page)
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
    page.close()
    reader.close()


def test_the_map_draws_boundaries_with_names_and_counts_incidents_at_one_place(
    outlined: httpx.Client, browser: Any, api_url: str
) -> None:
    page = browser.new_page(
        locale="zh-CN", timezone_id="Asia/Shanghai", viewport={"width": 1440, "height": 900}
    )
    console.login(browser, api_url, issue(api_url, "dispatcher", STREET), page=page)
    page.click("nav >> text=一张图")
    page.wait_for_selector(f"path[data-area-code='{COMMUNITY}'][data-kind=area]")
    page.wait_for_selector(f"path[data-area-code='{STREET}'][data-kind=area]")
    labels = page.eval_on_selector_all(".sb-area-label", "ls => ls.map(l => l.textContent)")
    assert sorted(labels) == ["光明街道", "楼村社区"]
    assert (
        len(page.query_selector_all(f"path[data-area-code='{COMMUNITY}'][data-kind=building]")) == 2
    )
    cluster = page.wait_for_selector(".sb-cluster[data-count='12']")
    assert "major" in cluster.get_attribute("class")  # the most urgent whistle inside
    assert cluster.inner_text() == "12"
    assert len(page.query_selector_all(".sb-cluster")) == 1
    assert len(page.query_selector_all(".sb-dot.emergency")) == 1  # the one a kilometre away
    page.screenshot(path=str(DOCS / "console-map.png"))
    cluster.click()  # opens up: the twelve as markers of their own (spread around the gate)
    page.wait_for_function("document.querySelectorAll('.sb-dot').length >= 13")
    page.close()
