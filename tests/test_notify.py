"""Notifications that reach people: channels and routes over the API, the real notifier, and
real HTTP receivers on loopback that check what the platforms check (signatures, shapes,
20 messages a minute)."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
from prometheus_client import REGISTRY

from hub.db import connect
from incidents.escalation import escalate_overdue
from incidents.events import OUTBOX_CHANNEL
from incidents.sla import Sla
from notify.outbox import fan_out, schedule_repeats
from tests.conftest import TokenFactory
from tests.eventually import eventually
from tests.notify_helpers import (
    PUBLIC,
    act,
    notifications,
    open_incident,
    running_notifier,
    wait_settled,
    wait_until,
)
from tests.platform_receivers import (
    DingTalkRobot,
    FeishuBot,
    Webhook,
    WeComRobot,
    serving,
)
from tests.test_registry_api import COMMUNITY

STREET = COMMUNITY[:9]
DISTRICT = COMMUNITY[:6]
OTHER = "440312001001"  # another district's community


def channel(admin: httpx.Client, **doc: Any) -> dict[str, Any]:
    response = admin.post("/api/v1/channels", json={"name": doc["id"], "area": COMMUNITY, **doc})
    assert response.status_code == 201, response.text
    return dict(response.json())


def route(admin: httpx.Client, **doc: Any) -> dict[str, Any]:
    body = {"name": doc["id"], "match": {"events": ["incident.created"]}, **doc}
    response = admin.post("/api/v1/routes", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


# --- waking ----------------------------------------------------------------------------------


def test_an_incident_change_wakes_the_notifiers_on_the_outboxs_own_channel(
    admin: httpx.Client, database_url: str
) -> None:
    """The notifier listens on the outbox's channel (and its own notifications'), not on the
    live stream's: every change written to the outbox says so there, at its commit."""
    with psycopg.connect(database_url, autocommit=True) as listener:
        listener.execute(f"LISTEN {OUTBOX_CHANNEL}")
        incident = open_incident(database_url, COMMUNITY)
        act(database_url, incident.id, "accept")
        heard = [n.channel for n in listener.notifies(timeout=10, stop_after=2)]
    assert heard == [OUTBOX_CHANNEL, OUTBOX_CHANNEL]


# --- webhook ---------------------------------------------------------------------------------


def test_a_webhook_gets_the_incident_signed_and_retries_keep_one_key(
    admin: httpx.Client, database_url: str
) -> None:
    with serving(Webhook("whsec-1"), "/hooks/shaobing") as hook:
        shown = channel(admin, id="ops-webhook", kind="webhook", url=hook.url, secret="whsec-1")
        assert shown["has_secret"] is True and "whsec-1" not in json.dumps(shown)
        route(admin, id="fire-ops", channels=["ops-webhook"])
        # The receiver fails, then asks for time, then takes it.
        hook.script = [(500, {}, 0.0), (429, {"Retry-After": "1"}, 0.0)]
        with running_notifier(database_url):
            incident = open_incident(database_url, COMMUNITY)
            [got] = hook.wait_for(1, timeout=30)
            # The receiver has its answer before the sender records it: wait for the record.
            wait_until(lambda: [n for n in notifications(database_url)
                                if n["status"] == "delivered"])  # fmt: skip
            eventually(lambda: REGISTRY.get_sample_value(
                "sb_notification_delivery_seconds_count", {"kind": "webhook"}) or 0,
                what="the delivery's time recorded")  # fmt: skip
        body = got.json()
        assert body["event"] == "incident.created"
        assert body["incident"]["id"] == incident.id and body["incident"]["area"] == COMMUNITY
        assert body["incident"]["title"] == "烟感报警 3栋"
        keys = {r.headers["idempotency-key"] for r, _ in hook.refused} | {
            got.headers["idempotency-key"]}  # fmt: skip
        assert len(hook.refused) == 2 and len(keys) == 1  # three tries, one delivery
        retry_gap = got.at - hook.refused[1][0].at
        assert retry_gap >= 0.9  # Retry-After honoured
        [row] = notifications(database_url)
        assert (row["status"], row["attempts"], row["last_status"]) == ("delivered", 3, 200)
        log = admin.get("/api/v1/notifications", params={"incident_id": incident.id}).json()
        assert [(n["channel_id"], n["status"], n["attempts"]) for n in log["items"]] == [
            ("ops-webhook", "delivered", 3)]  # fmt: skip
        sample = REGISTRY.get_sample_value
        assert (sample("sb_notifications_total", {"kind": "webhook", "outcome": "retry"}) or 0) >= 2
        assert (sample("sb_notification_delivery_seconds_count", {"kind": "webhook"}) or 0) >= 1


def test_a_final_refusal_is_kept_and_not_retried(admin: httpx.Client, database_url: str) -> None:
    with serving(Webhook("right")) as hook:
        channel(admin, id="wrong-secret", kind="webhook", url=hook.url, secret="wrong")
        route(admin, id="r", channels=["wrong-secret"])
        with running_notifier(database_url):
            open_incident(database_url, COMMUNITY)
            row = wait_until(lambda: [n for n in notifications(database_url)
                                      if n["status"] == "failed"])[0]  # fmt: skip
        assert row["attempts"] == 1 and row["last_status"] == 401
        assert "bad signature" in row["last_answer"]
        assert hook.accepted == []


# --- chat robots ----------------------------------------------------------------------------


def test_dingtalk_feishu_and_wecom_robots_take_signed_messages_in_their_shapes(
    admin: httpx.Client, database_url: str
) -> None:
    ding, fei, wecom = (DingTalkRobot("tok-1", "SECd1ng"), FeishuBot("hook-1", "f3ishu"),
                        WeComRobot("key-1"))  # fmt: skip
    with serving(ding) as d, serving(fei) as f, serving(wecom) as w:
        channel(admin, id="ding", kind="dingtalk", url=d.url + "robot/send?access_token=tok-1",
                secret="SECd1ng", mentions={"mobiles": ["13800138000"]})  # fmt: skip
        channel(admin, id="fei", kind="feishu", url=f.url + "open-apis/bot/v2/hook/hook-1",
                secret="f3ishu", mentions={"all": True})  # fmt: skip
        channel(admin, id="wx", kind="wecom", url=w.url + "cgi-bin/webhook/send?key=key-1",
                mentions={"mobiles": ["13900139000"], "user_ids": ["zhangsan"]})  # fmt: skip
        route(admin, id="all-robots", channels=["ding", "fei", "wx"])
        with running_notifier(database_url):
            open_incident(database_url, COMMUNITY, lat=22.78, lon=113.93)
            [dmsg], [fmsg] = d.wait_for(1), f.wait_for(1)
            markdown, text = w.wait_for(2)  # the Markdown message, then the mobile call-out
    body = dmsg.json()
    assert body["markdown"]["title"].startswith("🔴【应急哨】烟感报警 3栋")
    assert "楼村花园 3栋" in body["markdown"]["text"] and "@13800138000" in body["markdown"]["text"]
    assert body["at"]["atMobiles"] == ["13800138000"]
    assert "uri.amap.com/marker?position=113.93,22.78" in body["markdown"]["text"]
    card = fmsg.json()["card"]
    assert (
        card["header"]["template"] == "red" and "<at id=all></at>" in card["elements"][0]["content"]
    )
    content = markdown.json()["markdown"]["content"]
    assert content.startswith("### 🔴【应急哨】烟感报警 3栋") and "<@zhangsan>" in content
    assert f"({PUBLIC}/incidents/" in content  # the console's page, which a browser can open
    assert text.json()["text"]["mentioned_mobile_list"] == ["13900139000"]
    assert ding.refused == [] and fei.refused == [] and wecom.refused == []


def test_a_burst_is_grouped_within_the_robots_limit_and_nothing_is_dropped(
    admin: httpx.Client, database_url: str
) -> None:
    """30 alarms in 10 s to one robot of 20 messages a minute."""
    with serving(WeComRobot("burst")) as robot:
        channel(admin, id="wx", kind="wecom", url=robot.url + "cgi-bin/webhook/send?key=burst")
        route(admin, id="r", channels=["wx"])
        with running_notifier(database_url):
            titles = []
            for n in range(30):
                titles.append(f"烟感报警 {n + 1}号楼")
                open_incident(database_url, COMMUNITY, title=titles[-1], building=f"{n + 1}号楼")
                time.sleep(10 / 30)
            wait_until(lambda: all(r["status"] == "delivered"
                                   for r in notifications(database_url)) and
                       len(notifications(database_url)) == 30, timeout=40)  # fmt: skip
    assert robot.refused == []  # never over the limit
    sent = [r.json()["markdown"]["content"] for r in robot.accepted]
    assert len(sent) <= 20
    named = [t for t in titles if any(f"{t}" in content for content in sent)]
    assert named == titles  # every alarm named in some message
    assert any(content.startswith("### ") and "条事件通知" in content for content in sent)
    firsts = [r.at for r in robot.accepted]
    windows = [sum(1 for t in firsts if start <= t < start + 60) for start in firsts]
    assert max(windows) <= 20


# --- routes, escalation chains, districts -----------------------------------------------------


def test_routes_match_events_priorities_and_escalation_levels(
    admin: httpx.Client, database_url: str, client_for: TokenFactory
) -> None:
    with serving(Webhook("s")) as hook:
        for area, name in ((COMMUNITY, "community"), (STREET, "street"), (DISTRICT, "district")):
            channel(admin, id=f"{name}-hook", kind="webhook", url=hook.url, secret="s", area=area)
        route(admin, id="community-emergencies", channels=["community-hook"],
              match={"events": ["incident.created", "incident.updated"],
                     "priority": ["emergency"], "area_prefix": COMMUNITY})  # fmt: skip
        route(admin, id="street-escalations", channels=["street-hook"],
              match={"events": ["incident.escalated"], "area_prefix": STREET})  # fmt: skip
        route(admin, id="district-escalations", channels=["district-hook"],
              match={"events": ["incident.escalated"], "area_prefix": DISTRICT})  # fmt: skip
        with running_notifier(database_url):
            urgent = open_incident(database_url, COMMUNITY)
            open_incident(database_url, COMMUNITY, title="低电量", building="5栋",
                          priority="routine", category="maintenance")  # fmt: skip
            act(database_url, urgent.id, "accept")
            escalate(database_url, urgent.id, STREET)
            hook.wait_for(3)
            wait_settled(database_url)  # every event judged, every notification sent
        events = sorted((r.json()["event"], r.json()["incident"]["id"]) for r in hook.accepted)
        assert events == [("incident.created", urgent.id), ("incident.escalated", urgent.id),
                          ("incident.updated", urgent.id)]  # fmt: skip
        reasons = {n["reason"] for n in notifications(database_url)}
        assert reasons == {"route:community-emergencies", "route:street-escalations"}


def escalate(database_url: str, incident_id: int, to: str) -> None:
    """Past its accept deadline, as the SLA timer finds it."""

    async def run() -> None:
        conn = await connect(database_url)
        async with conn, conn.transaction():
            await conn.execute("UPDATE incidents SET status = 'reported', accept_by = now() -"
                               " interval '1 minute' WHERE id = %s", (incident_id,))  # fmt: skip
            done = await escalate_overdue(conn, datetime.now(UTC) + timedelta(seconds=1), Sla())
            assert [d.to_area for d in done] == [to]

    asyncio.run(run())


def test_a_channel_never_hears_another_areas_incidents(
    admin: httpx.Client, database_url: str, client_for: TokenFactory
) -> None:
    with serving(Webhook("s")) as hook:
        channel(admin, id="ours", kind="webhook", url=hook.url, secret="s", area=COMMUNITY)
        # Even a route of all areas (an admin's) cannot make our channel hear another district.
        route(admin, id="everything", channels=["ours"], match={"events": ["incident.created"]})
        with running_notifier(database_url):
            theirs = open_incident(database_url, OTHER, title="别区火警")
            ours = open_incident(database_url, COMMUNITY, title="本区火警")
            [got] = hook.wait_for(1)
            wait_settled(database_url)  # both incidents judged, every notification sent
        assert got.json()["incident"]["id"] == ours.id
        assert {n["incident_id"] for n in notifications(database_url)} == {ours.id}
        assert theirs.id not in {n["incident_id"] for n in notifications(database_url)}
    with client_for("integrator", OTHER) as other:
        assert other.get("/api/v1/channels/ours").status_code == 404
        assert other.get("/api/v1/channels").json() == {"items": [], "next": None}
        refused = other.post("/api/v1/routes", json={
            "id": "steal", "name": "steal", "match": {"events": ["incident.created"]},
            "channels": ["ours"]})  # fmt: skip
        assert refused.status_code == 403  # integrators make channels, not routes
    with client_for("operator", OTHER) as operator:
        refused = operator.post("/api/v1/routes", json={
            "id": "steal", "name": "steal", "match": {"events": ["incident.created"]},
            "channels": ["ours"]})  # fmt: skip
        assert refused.status_code == 422 and "no channel ours" in refused.text
        wide = operator.post("/api/v1/routes", json={
            "id": "wide", "name": "wide", "channels": ["ours"],
            "match": {"events": ["incident.created"], "area_prefix": "4403"}})  # fmt: skip
        assert wide.status_code == 422 and "outside your scope" in wide.text


def test_channel_documents_are_checked_and_secrets_never_come_back(
    admin: httpx.Client, client_for: TokenFactory
) -> None:
    bad = [
        {"id": "d", "name": "d", "kind": "dingtalk", "area": COMMUNITY, "url": "https://x/y"},
        {"id": "w", "name": "w", "kind": "webhook", "area": COMMUNITY, "url": "ftp://x"},
        {"id": "m", "name": "m", "kind": "email", "area": COMMUNITY, "url": "smtp://h:25"},
        {"id": "a", "name": "a", "kind": "webhook", "area": "44031", "url": "https://x"},
        {"id": "r", "name": "r", "kind": "wecom", "area": COMMUNITY, "url": "https://x",
         "rate_per_minute": 0},
    ]  # fmt: skip
    for doc in bad:
        assert admin.post("/api/v1/channels", json=doc).status_code == 422, doc
    made = channel(admin, id="hook", kind="webhook", url="https://example.cn/h", secret="s3cr3t")
    again = admin.put("/api/v1/channels/hook", json={
        "id": "hook", "name": "renamed", "kind": "webhook", "area": COMMUNITY,
        "url": "https://example.cn/h"})  # fmt: skip
    assert again.status_code == 200 and again.json()["has_secret"] is True  # kept
    for shown in (made, again.json(), admin.get("/api/v1/channels/hook").json(),
                  *admin.get("/api/v1/channels").json()["items"]):  # fmt: skip
        assert "s3cr3t" not in json.dumps(shown) and "secret" not in shown
    with client_for("operator", COMMUNITY) as operator:
        assert operator.post("/api/v1/channels", json={
            "id": "x", "name": "x", "kind": "webhook", "area": COMMUNITY,
            "url": "https://x"}).status_code == 403  # fmt: skip
    with client_for("integrator", STREET) as street:
        outside = street.post(
            "/api/v1/channels",
            json={"id": "x", "name": "x", "kind": "webhook", "area": DISTRICT, "url": "https://x"},
        )
        assert outside.status_code == 403  # fmt: skip
    assert admin.delete("/api/v1/channels/hook").status_code == 204


def test_the_test_button_says_what_the_receiver_answered(admin: httpx.Client) -> None:
    with serving(DingTalkRobot("t", "right")) as robot:
        channel(admin, id="good", kind="dingtalk", url=robot.url + "robot/send?access_token=t",
                secret="right")  # fmt: skip
        channel(admin, id="bad", kind="dingtalk", url=robot.url + "robot/send?access_token=t",
                secret="wrong")  # fmt: skip
        good = admin.post("/api/v1/channels/good/test").json()
        bad = admin.post("/api/v1/channels/bad/test").json()
    assert good["outcome"] == "delivered"
    assert bad["outcome"] == "failed" and "sign not match" in bad["answer"]
    assert "哨兵测试消息" in robot.accepted[0].json()["markdown"]["title"]


# --- templates -------------------------------------------------------------------------------


def test_operators_reword_messages_and_english_is_there(
    admin: httpx.Client, database_url: str, client_for: TokenFactory
) -> None:
    templates = {(t["kind"], t["language"]): t for t in admin.get("/api/v1/templates").json()}
    assert ("incident.created", "en") in templates and not templates[
        ("incident.created", "zh-CN")]["custom"]  # fmt: skip
    unknown = admin.put("/api/v1/templates/incident.created/zh-CN",
                        json={"title": "{nope}", "body": "x"})  # fmt: skip
    assert unknown.status_code == 422 and "nope" in unknown.text
    with client_for("operator", COMMUNITY) as local:
        refused = local.put("/api/v1/templates/incident.created/zh-CN",
                            json={"title": "t", "body": "b"})  # fmt: skip
        assert refused.status_code == 403
    changed = admin.put(
        "/api/v1/templates/incident.created/en",
        json={
            "title": "ALARM {priority_label}: {title}",
            "body": "{title} at {place}, see {link} ({api_link})",
        },
    )
    assert changed.status_code == 200 and changed.json()["custom"] is True  # fmt: skip
    with serving(Webhook("s")) as hook:
        channel(admin, id="en-hook", kind="webhook", url=hook.url, secret="s", language="en")
        route(admin, id="r", channels=["en-hook"])
        with running_notifier(database_url):
            incident = open_incident(database_url, COMMUNITY)
            [got] = hook.wait_for(1)
    body = got.json()
    assert body["title"] == "ALARM Emergency: 烟感报警 3栋"
    assert (
        body["text"] == f"烟感报警 3栋 at 楼村花园 3栋, see {PUBLIC}/incidents/{incident.id}"
        f" ({PUBLIC}/api/v1/incidents/{incident.id})"
    )
    restored = admin.delete("/api/v1/templates/incident.created/en").json()
    assert restored["custom"] is False


# --- repeats ---------------------------------------------------------------------------------


def test_an_unaccepted_incident_is_sent_again_until_accepted_or_the_maximum(
    admin: httpx.Client, database_url: str
) -> None:
    channel(admin, id="pager", kind="webhook", url="https://example.cn/h", secret="s")
    route(admin, id="pager", channels=["pager"], repeat="5m", repeat_max=2)
    accepted = open_incident(database_url, COMMUNITY)
    waiting = open_incident(database_url, COMMUNITY, title="烟感报警 5栋", building="5栋")
    now = datetime.now(UTC)
    assert outbox(database_url, fan_out, now) == 2
    assert outbox(database_url, schedule_repeats, now + timedelta(minutes=4)) == 0
    assert outbox(database_url, schedule_repeats, now + timedelta(minutes=5, seconds=1)) == 2
    act(database_url, accepted.id, "accept")
    assert outbox(database_url, schedule_repeats, now + timedelta(minutes=10, seconds=2)) == 1
    assert outbox(database_url, schedule_repeats, now + timedelta(minutes=15, seconds=3)) == 0
    sent = [(n["incident_id"], n["event"], n["repeat_no"]) for n in notifications(database_url)]
    assert sent == [
        (accepted.id, "incident.created", 0), (waiting.id, "incident.created", 0),
        (accepted.id, "incident.repeat", 1), (waiting.id, "incident.repeat", 1),
        (waiting.id, "incident.repeat", 2),
    ]  # fmt: skip


def outbox(database_url: str, step: Any, now: datetime) -> int:
    async def run() -> int:
        conn = await connect(database_url)
        async with conn:
            return int(await step(conn, now))

    return asyncio.run(run())
