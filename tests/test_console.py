"""The console in a real browser (Debian's Chromium through Playwright) against the real hub:
the API serving the built console, PostgreSQL, mosquitto, the consumer and the rules engine.
A duty officer logs in, hears and sees a smoke alarm arrive without reloading, and works it
from the page to a rating, the API agreeing at each step. Screenshots go to
web/test-results/."""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from PIL import Image

from api.console import BUILT
from hub.embedded.ports import free_port
from hub.settings import MqttUrl, Settings
from tests.conftest import issue
from tests.ingest_helpers import Publisher, running_consumer
from tests.notify_helpers import wait_until
from tests.rules_helpers import running_rules, seed
from tests.services import api_server
from tests.test_registry_api import COMMUNITY, register_area

playwright_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parent.parent / "web" / "test-results"
ELSEWHERE = "440305001001"
pytestmark = [
    pytest.mark.slow,  # a browser
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Chromium is not installed"),
    pytest.mark.skipif(not (BUILT / "index.html").is_file(), reason="run `make console` first"),
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=["--autoplay-policy=no-user-gesture-required"])  # fmt: skip
        yield chromium
        chromium.close()


@pytest.fixture
def world(admin: httpx.Client, database_url: str) -> httpx.Client:
    register_area(admin)
    register_area(admin, ELSEWHERE, "南山社区")
    # Playwright's sync API keeps an event loop running on this thread: asyncio elsewhere.
    seeding = threading.Thread(target=seed, args=(database_url,))
    seeding.start()
    seeding.join()
    for body in (
        {"id": "SD-UI", "type": "smoke_sensor", "area": COMMUNITY, "site": "楼村花园",
         "building": "3栋", "lat": 22.7801, "lon": 113.9301},
        {"id": "SD-FAR", "type": "smoke_sensor", "area": ELSEWHERE, "site": "南山花园",
         "building": "1栋", "lat": 22.52, "lon": 113.93},
    ):  # fmt: skip
        assert admin.post("/api/v1/devices", json=body).status_code == 201
    for unit_id, lat in (("FIRE-1", 22.781), ("FIRE-2", 22.80)):
        assert admin.post("/api/v1/units", json={
            "id": unit_id, "name": f"消防站 {unit_id}", "kind": "fire", "area": COMMUNITY,
            "categories": ["fire"], "lat": lat, "lon": 113.931}).status_code == 201  # fmt: skip
    return admin


def login(browser: Any, base: str, token: str, *, page: Any = None) -> Any:
    page = page or browser.new_page(locale="zh-CN")
    page.goto(base + "/")
    page.wait_for_url("**/login")
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")
    page.wait_for_selector("[data-testid=who]")
    page.wait_for_selector("text=实时")  # the live stream is up
    return page


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def store_evidence(
    settings: Settings, database_url: str, camera: str, size: tuple[int, int], event: str
) -> str:
    """A camera's evidence picture as a vision worker leaves it: the JPEG and its row."""
    picture = io.BytesIO()
    Image.new("RGB", size, (220, 80, 20)).save(picture, "JPEG")
    evidence_id = hashlib.sha256(picture.getvalue() + camera.encode()).hexdigest()[:32]
    relative = Path("evidence") / evidence_id[:2] / f"{evidence_id}.jpg"
    (settings.data_dir / relative).parent.mkdir(parents=True, exist_ok=True)
    (settings.data_dir / relative).write_bytes(picture.getvalue())
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO evidence (id, camera_id, area, event_type, width, height, bytes, path)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (evidence_id, camera, COMMUNITY, event, *size, len(picture.getvalue()), str(relative)),
        )
    return evidence_id


def alarm(pub: Publisher, device: str = "SD-UI", area: str = COMMUNITY, seq: int = 1) -> None:
    pub.send(f"sb/{area}/{device}/event",
             {"seq": seq, "ts": int(time.time() * 1000), "type": "smoke_alarm", "smoke": 3.3})  # fmt: skip


def test_an_alarm_arrives_live_and_is_worked_to_a_rating_from_the_page(
    world: httpx.Client, browser: Any, api_url: str, database_url: str, mqtt_server: MqttUrl
) -> None:
    dispatcher = issue(api_url, "dispatcher", COMMUNITY[:6])
    page = login(browser, api_url, dispatcher)
    assert "调度员" in page.inner_text("[data-testid=who]")
    assert "440311" in page.inner_text("[data-testid=who]")
    assert page.evaluate("sessionStorage.getItem('sb_token')") == dispatcher
    assert dispatcher not in page.url
    with running_rules(database_url), running_consumer(database_url, mqtt_server):
        pub = Publisher(mqtt_server)
        alarm(pub)
        pub.close()
        popup = page.wait_for_selector("[role=alertdialog]", timeout=15_000)
        assert "烟感报警：楼村花园 3栋" in popup.inner_text()
        assert_popup_facts(page, place="楼村花园 3栋", who=("device", "SD-UI"))
        row = page.wait_for_selector("[data-incident-id]")
        incident_id = int(row.get_attribute("data-incident-id"))
        shot(page, "board-with-alarm")
        assert page.evaluate("performance.getEntriesByType('navigation').length") == 1

    def api_state() -> dict[str, Any]:
        body: dict[str, Any] = world.get(f"/api/v1/incidents/{incident_id}").json()
        return body

    page.click("[role=alertdialog] button.primary")
    page.wait_for_url(f"**/incidents/{incident_id}")
    page.wait_for_selector("[data-action=accept]")
    page.wait_for_selector(".incident [data-field=deadline][data-deadline=accept]")
    shot(page, "incident")
    steps = [("accept", "accepted"), ("dispatch", "dispatched"), ("start", "handling"),
             ("resolve", "resolved"), ("verify", "verified"), ("close", "closed")]  # fmt: skip
    for action, status in steps:
        if action == "dispatch":
            chosen = page.eval_on_selector("select[name=unit]", "s => s.value")
            assert chosen == api_state()["suggested_unit_id"] == "FIRE-1"  # the nearest
        if action == "resolve":
            page.fill("textarea[name=note]", "误报，厨房油烟")
        page.click(f"[data-action={action}]")
        if action in ("verify", "close"):  # irreversible: confirmed in a dialog
            if action == "close":
                page.check("[role=dialog] input[name=close-reason][value=resolved]")
            page.click("[role=dialog] [data-confirm-action=confirm]")
        wait_until(lambda status=status: api_state()["status"] == status, timeout=10)
        page.wait_for_selector(f"[data-field=status]:has-text('{page_status(status)}')")
        if action == "accept":  # the accept clock stops, the resolve clock runs
            page.wait_for_selector(".incident [data-field=deadline][data-deadline=resolve]")
            assert "受理剩余" not in page.inner_text(".incident .facts")
            assert "处置剩余" in page.inner_text(".incident .facts")
        if action == "resolve":  # no deadline runs any more
            page.wait_for_selector(".incident [data-field=deadline]", state="detached")
    assert api_state()["unit_id"] == "FIRE-1"
    assert api_state()["close_reason"] == "resolved"
    page.select_option("select[name=rating]", "4")
    page.click("[data-action=rate]")
    page.click("[role=dialog] [data-confirm-action=confirm]")
    wait_until(lambda: api_state()["rating"] == 4, timeout=10)
    page.wait_for_selector("[data-field=rating]")
    shot(page, "incident-rated")
    audit = world.get(f"/api/v1/incidents/{incident_id}/audit").json()
    assert [a["action"] for a in audit][-7:] == ["accept", "dispatch", "start", "resolve",
                                                  "verify", "close", "rate"]  # fmt: skip
    page.close()


def assert_popup_facts(page: Any, *, place: str, who: tuple[str, str]) -> None:
    """The alarm popup tells when (zh-CN), where to the floor, which device (or reporter), the
    whistle and the time left to accept."""
    popup = "[role=alertdialog]"
    when = page.inner_text(f"{popup} [data-field=time]")
    assert re.fullmatch(r"\d{4}/\d{1,2}/\d{1,2} \d{2}:\d{2}:\d{2}", when), when
    assert page.inner_text(f"{popup} [data-field=place]") == place
    assert page.inner_text(f"{popup} [data-field={who[0]}]") == who[1]
    assert page.inner_text(f"{popup} [data-field=whistle]") in ("应急哨", "攻坚哨")
    clock = page.inner_text(f"{popup} [data-field=deadline][data-deadline=accept]")
    assert re.fullmatch(r"\d+:\d{2}", clock.strip()), clock
    assert "受理剩余" in page.inner_text(popup)


def page_status(status: str) -> str:
    return {"accepted": "已受理", "dispatched": "已派遣", "handling": "处置中",
            "resolved": "已处置", "verified": "已核查", "closed": "已结案"}[status]  # fmt: skip


def test_a_409_says_what_is_allowed_and_viewers_see_no_buttons(
    world: httpx.Client, browser: Any, api_url: str
) -> None:
    incident = world.post("/api/v1/incidents", json={
        "category": "fire", "priority": "routine", "title": "楼道堆物", "area": COMMUNITY,
        "lat": 22.78, "lon": 113.93}).json()  # fmt: skip
    page = browser.new_page(locale="zh-CN")
    frozen = threading.Event()  # once set, the stream's news stops reaching the page

    def relay(socket: Any) -> None:
        server = socket.connect_to_server()
        server.on_message(lambda message: None if frozen.is_set() else socket.send(message))

    page.route_web_socket("**/api/v1/stream", relay)
    login(browser, api_url, issue(api_url, "dispatcher", COMMUNITY), page=page)
    page.goto(f"{api_url}/incidents/{incident['id']}")
    page.wait_for_selector("[data-action=accept]")
    frozen.set()
    world.post(f"/api/v1/incidents/{incident['id']}/actions", json={"action": "accept"})
    page.click("[data-action=accept]")  # another desk was quicker, and the page has not heard
    problem = page.wait_for_selector("[role=alert]")
    assert "当前状态不允许该操作" in problem.inner_text()
    page.close()

    viewer = login(browser, api_url, issue(api_url, "viewer", COMMUNITY))
    viewer.goto(f"{api_url}/incidents/{incident['id']}")
    viewer.wait_for_selector("text=楼道堆物")
    assert viewer.query_selector_all("[data-action]") == []
    viewer.close()


def test_closing_from_the_keyboard_asks_for_a_reason_and_esc_cancels(
    world: httpx.Client, browser: Any, api_url: str
) -> None:
    """`c` on an open incident opens a dialog that traps focus; Enter does nothing until a
    close reason is chosen, Esc cancels, and the incident closes only once confirmed."""
    page = login(browser, api_url, issue(api_url, "dispatcher", COMMUNITY))
    incident = world.post("/api/v1/incidents", json={
        "category": "fire", "priority": "major", "title": "楼道冒烟", "area": COMMUNITY,
        "site": "楼村花园", "building": "3栋", "floor": "5"}).json()  # fmt: skip
    page.wait_for_selector("[role=alertdialog] [data-field=place]")
    assert_popup_facts(page, place="楼村花园 3栋 5层", who=("reporter", incident["reported_by"]))
    shot(page, "alarm-popup")
    page.click("[role=alertdialog] button.primary")
    page.wait_for_selector("[data-action=close]")

    def api_state() -> dict[str, Any]:
        body: dict[str, Any] = world.get(f"/api/v1/incidents/{incident['id']}").json()
        return body

    page.keyboard.press("c")
    dialog = "[role=dialog][aria-modal=true][data-confirm=close]"
    page.wait_for_selector(dialog)
    assert page.is_disabled(f"{dialog} [data-confirm-action=confirm]")
    page.keyboard.press("Enter")  # no reason yet: stays open
    for _ in range(8):  # focus stays inside the dialog
        page.keyboard.press("Tab")
        assert page.evaluate(f"!!document.activeElement.closest('{dialog}')")
    page.keyboard.press("Escape")
    page.wait_for_selector(dialog, state="detached")
    assert api_state()["status"] == "reported"

    page.keyboard.press("c")
    page.wait_for_selector(dialog)
    page.check(f"{dialog} input[name=close-reason][value=false_alarm]")
    page.fill(f"{dialog} textarea[name=confirm-text]", "炊烟，非火情")
    shot(page, "confirm-close")
    page.keyboard.press("Enter")
    wait_until(lambda: api_state()["status"] == "closed", timeout=10)
    page.wait_for_selector(dialog, state="detached")
    assert api_state()["close_reason"] == "false_alarm"
    audit = world.get(f"/api/v1/incidents/{incident['id']}/audit").json()
    closes = [a for a in audit if a["action"] == "close"]
    assert [(a["from_status"], a["note"]) for a in closes] == [("reported", "炊烟，非火情")]
    page.close()


def test_a_failed_verification_needs_a_reason(
    world: httpx.Client, browser: Any, api_url: str
) -> None:
    incident = world.post("/api/v1/incidents", json={
        "category": "fire", "priority": "routine", "title": "消防通道堵塞", "area": COMMUNITY,
        "lat": 22.78, "lon": 113.93}).json()  # fmt: skip
    path = f"/api/v1/incidents/{incident['id']}/actions"
    for body in ({"action": "accept"}, {"action": "dispatch", "unit_id": "FIRE-1"},
                 {"action": "start"}, {"action": "resolve"}):  # fmt: skip
        assert world.post(path, json=body).status_code == 200
    page = login(browser, api_url, issue(api_url, "dispatcher", COMMUNITY))
    page.goto(f"{api_url}/incidents/{incident['id']}")
    page.click("[data-action=reject]")
    dialog = "[role=dialog][data-confirm=reject]"
    page.wait_for_selector(dialog)
    assert page.is_disabled(f"{dialog} [data-confirm-action=confirm]")
    page.fill(f"{dialog} textarea[name=confirm-text]", "通道仍有电动车")
    page.click(f"{dialog} [data-confirm-action=confirm]")
    page.wait_for_selector(f"[data-field=status]:has-text('{page_status('handling')}')")
    audit = world.get(f"/api/v1/incidents/{incident['id']}/audit").json()
    assert (audit[-1]["action"], audit[-1]["note"]) == ("reject", "通道仍有电动车")
    page.close()


def test_another_district_sees_none_of_it(world: httpx.Client, browser: Any, api_url: str) -> None:
    mine = world.post("/api/v1/incidents", json={
        "category": "fire", "priority": "major", "title": "光明的火情", "area": COMMUNITY}).json()  # fmt: skip
    world.post("/api/v1/incidents", json={
        "category": "fire", "priority": "major", "title": "南山的火情", "area": ELSEWHERE})  # fmt: skip
    page = login(browser, api_url, issue(api_url, "dispatcher", ELSEWHERE[:6]))
    page.wait_for_selector("[data-incident-id]")
    titles = page.inner_text(".list")
    assert "南山的火情" in titles and "光明的火情" not in titles
    page.goto(f"{api_url}/incidents/{mine['id']}")
    assert "not found" in page.wait_for_selector("[role=alert]").inner_text()
    page.close()


def test_evidence_pictures_load_with_the_token(
    world: httpx.Client, browser: Any, api_url: str, database_url: str, settings: Settings
) -> None:
    evidence_id = store_evidence(settings, database_url, "CAM-UI", (320, 180), "fire")
    with psycopg.connect(database_url) as conn:
        incident_id = conn.execute(
            "INSERT INTO incidents (group_key, category, priority, status, area, title,"
            " created_at, updated_at, accept_by, resolve_by, accept_deadline, resolve_deadline,"
            " signal_count, first_signal_at, last_signal_at, evidence) VALUES ('ui', 'fire',"
            " 'major', 'reported', %s, '摄像头看到火情', now(), now(), now() + interval '5m',"
            " now() + interval '4h', now() + interval '5m', now() + interval '4h', 1, now(),"
            " now(), %s) RETURNING id",
            (COMMUNITY, json.dumps([{"kind": "camera_fire", "source_id": "CAM-UI",
                                     "evidence": evidence_id}])),
        ).fetchone()[0]  # fmt: skip
    page = login(browser, api_url, issue(api_url, "dispatcher", COMMUNITY))
    page.goto(f"{api_url}/incidents/{incident_id}")
    image = page.wait_for_selector(".evidence img")
    wait_until(lambda: page.evaluate("i => i.naturalWidth", image) == 320, timeout=10)
    assert image.get_attribute("src").startswith("blob:")  # fetched with the token
    shot(page, "evidence")
    page.close()


def test_a_messages_link_opens_its_incident_after_the_token(
    world: httpx.Client, browser: Any, api_url: str
) -> None:
    """Messages link to /incidents/{id}: a browser without a token is asked for one, then lands
    on that incident, not on the board."""
    incident = world.post(
        "/api/v1/incidents", json={"category": "fire", "title": "消息里的链接", "area": COMMUNITY}
    ).json()
    page = browser.new_page(locale="zh-CN")
    page.goto(f"{api_url}/incidents/{incident['id']}")
    page.wait_for_url(lambda url: "/login?next=" in url)
    page.fill("input[name=token]", issue(api_url, "dispatcher", COMMUNITY))
    page.click("button[type=submit]")
    page.wait_for_url(f"**/incidents/{incident['id']}")
    page.wait_for_selector("text=消息里的链接")
    page.close()


def test_a_reports_photos_show_on_its_incident(
    world: httpx.Client, browser: Any, api_url: str
) -> None:
    incident = world.post("/api/v1/incidents", json={
        "category": "fire_safety", "title": "楼道堆物", "area": COMMUNITY}).json()  # fmt: skip
    picture = io.BytesIO()
    Image.new("RGB", (200, 150), (30, 90, 200)).save(picture, "PNG")
    added = world.post(f"/api/v1/incidents/{incident['id']}/attachments",
                       files={"file": ("p.png", picture.getvalue(), "image/png")})  # fmt: skip
    assert added.status_code == 201, added.text
    page = login(browser, api_url, issue(api_url, "dispatcher", COMMUNITY))
    page.goto(f"{api_url}/incidents/{incident['id']}")
    image = page.wait_for_selector(".evidence img")
    wait_until(lambda: page.evaluate("i => i.naturalWidth", image) == 200, timeout=10)
    assert image.get_attribute("src").startswith("blob:")  # fetched with the token
    page.close()


def test_the_stats_and_map_views_render_with_data(
    world: httpx.Client, browser: Any, api_url: str
) -> None:
    for title, priority in (("电动车充电", "major"), ("井盖缺失", "routine")):
        world.post("/api/v1/incidents", json={"category": "public_safety", "priority": priority,
                                              "title": title, "area": COMMUNITY, "lat": 22.779,
                                              "lon": 113.929})  # fmt: skip
    page = login(browser, api_url, issue(api_url, "dispatcher", COMMUNITY[:6]))
    page.click("text=统计")
    row = page.wait_for_selector("[data-group=public_safety]")
    assert row.inner_text().split()[1] == "2"
    page.wait_for_selector("canvas")  # the ECharts chart
    shot(page, "stats")
    # by area, rolled up to the street: the community's incidents under the street's code
    page.select_option("select[name=group_by]", "area")
    page.select_option("select[name=level]", "street")
    page.click("form.range button[type=submit]")
    street_row = page.wait_for_selector(f"[data-group='{COMMUNITY[:9]}']")
    assert int(street_row.inner_text().split()[1]) >= 2
    page.click("text=一张图")
    page.wait_for_selector(".leaflet-container")
    # units and a device as dots, each layer drawn as its own request answers; the two
    # incidents at one place as one marker that counts them
    wait_until(lambda: len(page.query_selector_all("path.leaflet-interactive")) >= 3, timeout=15)
    page.wait_for_selector(".sb-cluster[data-count='2']")
    shot(page, "map")
    page.click("text=设备")
    page.wait_for_selector("[data-device-id=SD-UI]")
    page.click("text=English")
    page.wait_for_selector("text=Device health")
    page.close()


def test_the_board_recovers_after_the_api_restarts(
    world: httpx.Client, browser: Any, settings: Settings, api_url: str
) -> None:
    second = free_port()
    with api_server(settings, port=second) as base:
        page = login(browser, base, issue(base, "dispatcher", COMMUNITY))
    page.wait_for_selector("text=连接中断", timeout=15_000)  # the API went away
    world.post("/api/v1/incidents", json={"category": "fire", "priority": "routine",
                                          "title": "重启期间的上报", "area": COMMUNITY})  # fmt: skip
    with api_server(settings, port=second):
        page.wait_for_selector("text=实时", timeout=30_000)
        page.wait_for_selector("text=重启期间的上报", timeout=10_000)  # fetched again
        assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
        shot(page, "board-after-restart")
    page.close()


def test_rules_are_switched_edited_with_field_errors_and_backtested(
    world: httpx.Client, browser: Any, api_url: str
) -> None:
    page = login(browser, api_url, issue(api_url, "operator", ""))
    page.click("nav >> text=规则")
    row = page.wait_for_selector("[data-rule-id=smoke-alarm]")
    row.wait_for_selector("text=准确率")
    row.query_selector("[data-action=disable]").click()
    wait_until(lambda: world.get("/api/v1/rules/smoke-alarm").json()["enabled"] is False,
               timeout=10)  # fmt: skip
    page.wait_for_selector("[data-rule-id=smoke-alarm] [data-action=enable]")
    page.click("[data-rule-id=smoke-alarm] [data-action=edit]")
    document = world.get("/api/v1/rules/smoke-alarm").json()["document"]
    broken = {**document, "threshold": {"count": 0, "within": "60s"}}
    page.fill("textarea[name=document]", json.dumps(broken))
    page.click("[data-action=save]")
    problem = page.wait_for_selector(".errors")
    assert "threshold" in problem.inner_text()
    assert world.get("/api/v1/rules/smoke-alarm").json()["document"]["threshold"] != broken[
        "threshold"]  # nothing saved  # fmt: skip
    yaml_draft = "\n".join(f"{key}: {json.dumps(value, ensure_ascii=False)}"
                           for key, value in document.items())  # fmt: skip
    page.fill("textarea[name=document]", yaml_draft)
    page.click("[data-action=backtest]")
    assert "0" in page.wait_for_selector("[data-testid=backtest]").inner_text()
    page.click("[data-action=save]")
    page.wait_for_selector("text=已保存为第")
    shot(page, "rules")
    page.close()


def test_device_health_and_a_cameras_latest_evidence(
    world: httpx.Client, browser: Any, api_url: str, database_url: str, settings: Settings
) -> None:
    created = world.post("/api/v1/cameras", json={
        "id": "CAM-DV", "area": COMMUNITY, "site": "楼村花园", "building": "3栋",
        "stream_url": "rtsp://127.0.0.1:8554/cam"})  # fmt: skip
    assert created.status_code == 201, created.text
    store_evidence(settings, database_url, "CAM-DV", (160, 90), "intrusion")
    page = login(browser, api_url, issue(api_url, "dispatcher", COMMUNITY))
    page.click("nav >> text=设备")
    device = page.wait_for_selector("[data-device-id=SD-UI]")
    assert "从未连接" in device.inner_text()
    camera = page.wait_for_selector("[data-camera-id=CAM-DV]")
    camera.wait_for_selector("text=not_analysed")
    camera.wait_for_selector("text=no vision worker is running")  # why, from the stats
    banner = page.wait_for_selector("[data-testid=vision-off]")
    assert "视频分析已关闭" in banner.inner_text()
    image = camera.wait_for_selector("img")
    wait_until(lambda: page.evaluate("i => i.naturalWidth", image) == 160, timeout=10)
    shot(page, "devices")
    page.close()


def test_a_street_summons_departments_and_watches_them_report_in(
    world: httpx.Client, browser: Any, api_url: str
) -> None:
    """吹哨报到 on the console: the picker summons two departments with a lead, the 报到 board
    follows a report-in made elsewhere without a reload, the board's column counts it, and
    the ranking page lists the departments."""
    register_area(world, COMMUNITY[:6], "光明区")
    for unit_id, name, lat in (("D-ZJ", "区住建局", 22.79), ("D-CG", "区城管局", 22.781)):
        assert world.post("/api/v1/units", json={
            "id": unit_id, "name": name, "kind": "department", "area": COMMUNITY[:6],
            "categories": ["building_safety"], "lat": lat, "lon": 113.931}).status_code == 201  # fmt: skip
    created = world.post("/api/v1/incidents", json={
        "category": "building_safety", "priority": "routine", "title": "外墙瓷砖脱落",
        "area": COMMUNITY, "lat": 22.78, "lon": 113.93})  # fmt: skip
    incident_id = created.json()["id"]
    assert world.post(f"/api/v1/incidents/{incident_id}/actions",
                      json={"action": "accept"}).status_code == 200  # fmt: skip
    page = login(browser, api_url, issue(api_url, "dispatcher", COMMUNITY[:9]))
    page.goto(f"{api_url}/incidents/{incident_id}")
    picker = page.wait_for_selector("[data-testid=summon-picker]")
    # the departments come a moment after the picker itself
    page.wait_for_function(
        "document.querySelectorAll('[data-testid=summon-picker] tr[data-unit]').length >= 2"
    )
    rows = [r.get_attribute("data-unit") for r in picker.query_selector_all("tr[data-unit]")]
    assert rows == ["D-CG", "D-ZJ"]  # nearest first
    page.check("tr[data-unit=D-CG] input[name=summon-unit]")
    page.check("tr[data-unit=D-ZJ] input[name=summon-unit]")
    page.check("tr[data-unit=D-CG] input[name=summon-lead]")
    page.select_option("select[name=whistle]", "major")
    page.click("[data-testid=summon-picker] [data-action=summon]")
    page.wait_for_selector("[data-testid=summon-board] tr[data-unit=D-ZJ][data-status=summoned]")
    summons = {
        s["unit_id"]: s for s in world.get(f"/api/v1/incidents/{incident_id}").json()["summons"]
    }
    assert set(summons) == {"D-ZJ", "D-CG"} and summons["D-CG"]["lead"]
    assert page.get_attribute("tr[data-unit=D-CG]", "data-light") == "green"
    shot(page, "summon-board")

    # 住建 reports in from its own phone: the board follows over the stream.
    reported = world.post(f"/api/v1/incidents/{incident_id}/actions",
                          json={"action": "report_in", "unit_id": "D-ZJ"})  # fmt: skip
    assert reported.status_code == 200, reported.text
    page.wait_for_selector("tr[data-unit=D-ZJ][data-status=reported]", timeout=10_000)
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
    page.click("text=值班台")
    row = page.wait_for_selector(f"[data-incident-id='{incident_id}'] [data-field=summons]")
    assert "1/2" in row.inner_text()
    page.click("text=部门考核")
    ranking = page.wait_for_selector("[data-testid=ranking]")
    page.wait_for_function(
        "document.querySelectorAll('[data-testid=ranking] tr[data-unit]').length >= 2"
    )
    names = [r.inner_text().split()[1] for r in ranking.query_selector_all("tr[data-unit]")]
    assert names == ["区住建局", "区城管局"]  # reported in on time ranks first
    shot(page, "departments")
    page.close()


def test_a_negative_list_entry_is_confirmed_first(
    world: httpx.Client, browser: Any, api_url: str
) -> None:
    """日常哨's negative list stays on a department's record: the flag asks first, and Esc
    leaves the record clean."""
    register_area(world, COMMUNITY[:6], "光明区")
    assert world.post("/api/v1/units", json={
        "id": "D-CG", "name": "区城管局", "kind": "department", "area": COMMUNITY[:6],
        "categories": ["building_safety"]}).status_code == 201  # fmt: skip
    token = issue(api_url, "dispatcher", COMMUNITY[:9])
    street = httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {token}"})
    incident_id = street.post("/api/v1/incidents", json={
        "category": "building_safety", "priority": "routine", "title": "外墙瓷砖脱落",
        "area": COMMUNITY}).json()["id"]  # fmt: skip
    path = f"/api/v1/incidents/{incident_id}/actions"
    for body in ({"action": "accept"},
                 {"action": "summon", "unit_ids": ["D-CG"], "whistle": "routine"},
                 {"action": "close", "reason": "resolved"}):  # fmt: skip
        assert street.post(path, json=body).status_code == 200, body
    page = login(browser, api_url, token)
    page.goto(f"{api_url}/incidents/{incident_id}")
    page.select_option("select[name=flag-D-CG]", "late")
    page.click("tr[data-unit=D-CG] [data-action=flag_unit]")
    dialog = "[role=dialog][data-confirm=flag_unit]"
    assert "区城管局" in page.inner_text(dialog)
    page.keyboard.press("Escape")
    page.wait_for_selector(dialog, state="detached")
    page.click("tr[data-unit=D-CG] [data-action=flag_unit]")
    page.click(f"{dialog} [data-confirm-action=confirm]")

    def flags() -> list[str]:
        summons = street.get(f"/api/v1/incidents/{incident_id}").json()["summons"]
        return list(summons[0]["flags"])

    wait_until(lambda: "late" in flags(), timeout=10)
    audit = street.get(f"/api/v1/incidents/{incident_id}/audit").json()
    by_desk = [a for a in audit if a["action"] == "flag_unit" and a["actor"] != "shaobing"]
    assert [a["data"]["flags"] for a in by_desk] == [["late"]]  # once, not at the Esc
    street.close()
    page.close()
