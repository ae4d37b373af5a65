"""Rules and incidents you can trust (the hostile pass over the engine and the loop): re-arming
after a close, hub time for deadlines, late signals, a backtest that agrees with live for every
rule feature, confirmations, statistics by definition, bounded inputs, scope of dispatch and
auth, device tags. Real PostgreSQL, the real rules consumer on a clock the test sets."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import psycopg
import pytest

from hub.contracts import Signal
from hub.db import connect
from hub.settings import Settings
from incidents.actions import apply_action
from incidents.escalation import escalate_overdue
from incidents.models import ActionIn, NewIncident
from incidents.opening import open_or_attach
from incidents.sla import Sla
from incidents.stats import incident_stats
from tests.conftest import ADMIN_TOKEN
from tests.rules_helpers import RulesDriver, seed
from tests.services import api_server
from tests.test_registry_api import COMMUNITY, register_area

OTHER_DISTRICT = "440312001001"
# Hub times an hour ahead of the wall clock (however long the suite ran before these tests):
# silences and rules created now exist "before".
T0 = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@dataclass
class S:
    """A signal received at `T0 + at` s, stamped `late` s earlier by its device."""

    at: float
    kind: str = "smoke_alarm"
    building: str = "3栋"
    source: str = "SD-1"
    late: float = 0.0
    attrs: dict[str, Any] = field(default_factory=dict)

    def signal(self) -> Signal:
        return Signal(ts=at(self.at - self.late), kind=self.kind, source_id=self.source,
                      source_type="camera" if self.source.startswith("CAM") else "smoke_sensor",
                      area=COMMUNITY, site="楼村花园", building=self.building, value=3.1,
                      attrs=self.attrs)  # fmt: skip


@dataclass
class Close:
    """A person closes the rule's newest open incident at `T0 + at` s."""

    at: float
    reason: str = "false_alarm"


def rule_doc(rule_id: str, **overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": rule_id, "name": rule_id, "match": {"kind": ["smoke_alarm"]},
        "group_by": ["building"],
        "incident": {"category": "fire", "priority": "major", "title": "{kind} at {building}"},
    }  # fmt: skip
    doc.update(overrides)
    return doc


class Live:
    """One rule, live: signals stored as ingest stores them and the consumer stepped at the
    hub time each arrives; closes as people make them."""

    def __init__(self, admin: httpx.Client, database_url: str, doc: dict[str, Any]) -> None:
        created = admin.post("/api/v1/rules", json=doc)
        assert created.status_code == 201, created.text
        self.rule_id = doc["id"]
        self.database_url = database_url
        self.driver = RulesDriver(database_url, now=T0 - timedelta(seconds=1))

    def run(self, events: list[S | Close], *, until: float) -> None:
        for event in sorted(events, key=lambda e: e.at):
            if isinstance(event, Close):
                self.close_newest(at(event.at), event.reason)
                self.driver.step(at(event.at))
            else:
                self.driver.now = at(event.at)
                self.driver.feed([event.signal()])
        self.driver.step(at(until))

    def close_newest(self, when: datetime, reason: str) -> None:
        with psycopg.connect(self.database_url) as conn:
            row = conn.execute(
                "SELECT id FROM incidents WHERE rule_id = %s AND status <> 'closed'"
                " ORDER BY id DESC LIMIT 1",
                (self.rule_id,),
            ).fetchone()
        assert row is not None, "nothing open to close"
        act(self.database_url, row[0], ActionIn(action="close", reason=reason), when)  # type: ignore[arg-type]

    def incidents(self) -> list[tuple[str, int, str]]:
        with psycopg.connect(self.database_url) as conn:
            rows = conn.execute(
                "SELECT group_key, signal_count, priority FROM incidents WHERE rule_id = %s"
                " ORDER BY id",
                (self.rule_id,),
            ).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]

    def close(self) -> None:
        self.driver.close()


def act(database_url: str, incident_id: int, action: ActionIn, when: datetime) -> None:
    async def run() -> None:
        conn = await connect(database_url)
        async with conn:
            await apply_action(conn, incident_id, action, actor="t", scope="", now=when)
            await conn.commit()

    asyncio.run(run())


@pytest.fixture
def live(admin: httpx.Client, database_url: str) -> Iterator[Any]:
    register_area(admin)
    started: list[Live] = []

    def make(doc: dict[str, Any]) -> Live:
        started.append(Live(admin, database_url, doc))
        return started[-1]

    yield make
    for one in started:
        one.close()


B3 = f"area={COMMUNITY}|site=楼村花园|building=3栋"
B5 = f"area={COMMUNITY}|site=楼村花园|building=5栋"


# --- 1. re-arming after a close --------------------------------------------------------------


@pytest.mark.parametrize("cooldown", ["0s", "10m"])
def test_the_first_alarm_after_a_close_opens_a_new_incident(live: Any, cooldown: str) -> None:
    rule = live(rule_doc("rearm", cooldown=cooldown))
    rule.run([S(0), Close(30), S(60), S(11 * 60)], until=12 * 60)
    found = rule.incidents()
    if cooldown == "0s":  # the alarm at 60 s opens the second; the last one attaches to it
        assert found == [(B3, 1, "major"), (B3, 2, "major")]
    else:  # quiet until 30 s + 10 min; the first alarm after that opens it
        assert found == [(B3, 1, "major"), (B3, 1, "major")]


def test_rearming_holds_across_a_restart(live: Any) -> None:
    rule = live(rule_doc("rearm-restart", cooldown="1m"))
    rule.run([S(0), Close(10)], until=20)
    rule.driver.restart()  # a new process: it learns of the close from the table
    rule.run([S(30)], until=40)  # still cooling down
    rule.driver.restart()
    rule.run([S(100)], until=110)  # one alarm, after the cooldown: a new incident
    assert rule.incidents() == [(B3, 1, "major"), (B3, 1, "major")]


def test_a_restart_replays_history_with_its_silences(live: Any, admin: httpx.Client) -> None:
    """Windows rebuilt on start must not count what live evaluation did not."""
    drill = admin.post("/api/v1/silences", json={
        "matcher": {"kind": ["smoke_alarm"], "building": "3栋"}, "reason": "drill",
        "starts_at": at(0).isoformat(), "ends_at": at(30).isoformat(),
    })  # fmt: skip
    assert drill.status_code == 201, drill.text
    rule = live(rule_doc("replay-silence", threshold={"count": 2, "within": "5m"}))
    rule.run([S(10)], until=11)  # silenced
    rule.driver.restart()
    rule.run([S(60)], until=61)  # one audible alarm is not two
    assert rule.incidents() == []
    rule.run([S(70)], until=71)
    assert rule.incidents() == [(B3, 2, "major")]


def test_a_threshold_rule_counts_afresh_after_a_close(live: Any) -> None:
    rule = live(rule_doc("rearm-three", threshold={"count": 3, "within": "5m"}))
    rule.run([S(0), S(1), S(2), Close(10), S(20), S(21)], until=30)
    assert rule.incidents() == [(B3, 3, "major")]  # two after the close are not three
    rule.run([S(22)], until=40)
    assert rule.incidents() == [(B3, 3, "major"), (B3, 3, "major")]


def test_the_builtin_smoke_alarm_rearms_after_its_cooldown(
    admin: httpx.Client, database_url: str
) -> None:
    register_area(admin)
    seed(database_url)
    driver = RulesDriver(database_url, now=at(0))
    try:
        driver.feed([S(0).signal()])
        [(incident_id,)] = (
            psycopg.connect(database_url).execute("SELECT id FROM incidents").fetchall()
        )
        act(database_url, incident_id, ActionIn(action="close", reason="resolved"), at(60))  # type: ignore[arg-type]
        driver.now = at(60 + 10 * 60 + 1)
        driver.feed([S(60 + 10 * 60 + 1).signal()])  # a sensor that sends one alarm per fire
        assert psycopg.connect(database_url).execute(
            "SELECT count(*) FROM incidents"
        ).fetchone() == (2,)
    finally:
        driver.close()


# --- 2. hub time for the incident's own clock --------------------------------------------------


def incident_rows(database_url: str) -> list[dict[str, Any]]:
    with psycopg.connect(database_url, row_factory=psycopg.rows.dict_row) as conn:
        return conn.execute("SELECT * FROM incidents ORDER BY id").fetchall()


def test_deadlines_run_from_hub_time_whatever_the_device_clock(
    live: Any, database_url: str
) -> None:
    fast = live(rule_doc("skew", match={"kind": ["smoke_alarm"]}))
    fast.run([S(0, late=-240)], until=1)  # a device four minutes fast
    old = live(rule_doc("old", match={"kind": ["device_fault"]},
                        incident={"category": "maintenance", "priority": "routine", "title": "t"}))  # fmt: skip
    old.run([S(10, kind="device_fault", late=31 * 60)], until=11)  # a report 31 minutes old
    held = live(rule_doc("held", match={"kind": ["crowd"]}, group_by=["source_id"],
                         threshold={"count": 1, "within": "5m"}, **{"for": "2m"},
                         incident={"category": "public_order", "priority": "emergency",
                                   "title": "t"}))  # fmt: skip
    held.run([S(20, kind="crowd", source="CAM-1"), S(80, kind="crowd", source="CAM-1")],
             until=20 + 120)  # fmt: skip
    rows = {r["rule_id"]: r for r in incident_rows(database_url)}
    assert rows["skew"]["created_at"] == at(0)
    assert rows["skew"]["first_signal_at"] == at(240)  # the device's own time is kept
    assert rows["old"]["created_at"] == at(10)
    assert rows["old"]["accept_by"] - rows["old"]["created_at"] == timedelta(minutes=30)
    assert rows["held"]["created_at"] == at(20 + 120)  # the hold was over then, by hub time
    assert rows["held"]["accept_by"] - rows["held"]["created_at"] == timedelta(minutes=1)

    async def tick(now: datetime) -> int:
        conn = await connect(database_url)
        async with conn, conn.transaction():
            return len(await escalate_overdue(conn, now, Sla()))

    assert asyncio.run(tick(at(20 + 121))) == 0  # nothing escalates a second after opening
    act(database_url, rows["skew"]["id"], ActionIn(action="accept"), at(30))  # type: ignore[arg-type]

    async def mean_accept() -> float | None:
        conn = await connect(database_url)
        async with conn:
            stats = await incident_stats(conn, scope="", start=at(-60), end=at(3600), now=at(3600))
        return stats.groups[0].accept_mean_s

    mean = asyncio.run(mean_accept())
    assert mean is not None and mean > 0


def test_a_late_attach_keeps_updated_at_and_the_audit_in_order(
    live: Any, admin: httpx.Client, database_url: str
) -> None:
    rule = live(rule_doc("late-attach"))
    rule.run([S(0)], until=1)
    [row] = incident_rows(database_url)
    act(database_url, row["id"], ActionIn(action="accept"), at(100))  # type: ignore[arg-type]
    rule.run([S(200, late=600)], until=201)  # a signal the device dated ten minutes back
    [after] = incident_rows(database_url)
    assert after["updated_at"] == at(200) and after["signal_count"] == 2
    trail = admin.get(f"/api/v1/incidents/{row['id']}/audit").json()
    times = [datetime.fromisoformat(t["at"]) for t in trail]
    assert [t["action"] for t in trail] == ["report", "accept", "attach"]
    assert times == sorted(times)


# --- 3 and 4. late signals, and a backtest that agrees with live -------------------------------


def schedule_around(start: float, hours: int) -> dict[str, str]:
    """A daily window from T0 + `start` s for `hours` hours, in Shanghai time."""
    local = at(start).astimezone(ZoneInfo("Asia/Shanghai"))
    end = local + timedelta(hours=hours)
    return {"days": "mon-sun", "hours": f"{local:%H:%M}-{end:%H:%M}", "tz": "Asia/Shanghai"}


SCENARIOS: dict[str, tuple[dict[str, Any], list[S | Close], int]] = {
    "threshold": (
        {"threshold": {"count": 3, "within": "60s"}},
        [S(0), S(20), S(100), S(110), S(115), S(300), S(5, building="5栋")],
        1,
    ),
    "for": (
        {"match": {"kind": ["crowd"]}, "group_by": ["source_id"],
         "threshold": {"count": 1, "within": "30s"}, "for": "60s"},
        [S(0, "crowd", source="CAM-1"), S(20, "crowd", source="CAM-1"),
         S(45, "crowd", source="CAM-1"), S(70, "crowd", source="CAM-1"),
         S(0, "crowd", source="CAM-2"), S(200, "crowd", source="CAM-2")],
        1,
    ),
    "schedule": (
        {"match": {"kind": ["intrusion"]}, "group_by": ["source_id"],
         "schedule": schedule_around(3600, 1)},
        [S(60, "intrusion", source="CAM-1"), S(3700, "intrusion", source="CAM-2")],
        1,
    ),
    "confirm": (
        {"confirm": {"kind": ["camera_smoke"], "within": "120s", "same": "building"}},
        [S(0, "camera_smoke", source="CAM-1"), S(30), S(40, building="5栋"),
         S(60, "camera_smoke", source="CAM-5", building="5栋")],
        2,
    ),
    "inhibition": (
        {"match": {"kind": ["intrusion"]}, "group_by": ["source_id"]},
        [S(0, "stream_lost", source="CAM-1"), S(10, "intrusion", source="CAM-1"),
         S(20, "stream_restored", source="CAM-1"), S(30, "intrusion", source="CAM-1")],
        1,
    ),
    "silences": (
        {},
        [S(60), S(70, building="5栋"), S(400)],
        2,
    ),
    "cooldown": (
        {"cooldown": "10m"},
        [S(0), Close(30), S(60), S(200), S(700), S(710)],
        2,
    ),
    "late signals": (
        {"threshold": {"count": 3, "within": "60s"}},
        [S(0), S(100, late=70), S(110, late=95), S(400, late=10)],
        1,
    ),
}  # fmt: skip


@pytest.mark.parametrize("feature", list(SCENARIOS))
def test_backtest_agrees_with_live(
    feature: str, live: Any, admin: httpx.Client, database_url: str
) -> None:
    overrides, events, expected = SCENARIOS[feature]
    rule_id = "bt-" + feature.replace(" ", "-")
    if feature == "silences":
        silence = admin.post("/api/v1/silences", json={
            "matcher": {"kind": ["smoke_alarm"], "building": "3栋", "area_prefix": COMMUNITY},
            "starts_at": at(0).isoformat(), "ends_at": at(300).isoformat(), "reason": "drill",
        })  # fmt: skip
        assert silence.status_code == 201, silence.text
    rule = live(rule_doc(rule_id, **overrides))
    end = max(e.at for e in events) + 600
    rule.run(events, until=end)
    found = rule.incidents()
    assert len(found) == expected, found
    result = admin.post(f"/api/v1/rules/{rule_id}/backtest",
                        json={"from": at(-60).isoformat(), "to": at(end).isoformat()})  # fmt: skip
    assert result.status_code == 200, result.text
    replayed = [(i["group"], i["signals"], i["priority"]) for i in result.json()["first"]]
    assert result.json()["incidents"] == expected
    assert replayed == found


# --- 5. confirmations ------------------------------------------------------------------------


def test_a_muted_camera_does_not_corroborate(live: Any) -> None:
    rule = live(rule_doc("muted-confirm", confirm={"kind": ["camera_smoke"], "within": "120s",
                                                   "same": "building"}))  # fmt: skip
    rule.run([S(0, "stream_lost", source="CAM-1"), S(10, "camera_smoke", source="CAM-1"),
              S(20)], until=30)  # fmt: skip
    assert rule.incidents() == [(B3, 1, "major")]


def test_a_confirmation_reaches_its_own_incident(live: Any) -> None:
    rule = live(rule_doc("own-confirm", confirm={"kind": ["camera_smoke"], "within": "120s",
                                                 "same": "building"}))  # fmt: skip
    # 3栋's alarm is the most recent signal; the camera in 5栋 must still find 5栋's incident.
    rule.run([S(0, building="5栋"), S(5), S(10, "camera_smoke", source="CAM-5", building="5栋")],
             until=20)  # fmt: skip
    assert rule.incidents() == [(B5, 2, "emergency"), (B3, 1, "major")]


# --- 6. statistics, escalation, counts, silences, SLA ----------------------------------------


NOW = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def open_test_incident(conn_url: str, key: str, priority: str) -> int:
    async def run() -> int:
        conn = await connect(conn_url)
        async with conn:
            incident, _ = await open_or_attach(
                conn,
                NewIncident(rule_id="r", rule_version=1, group_key=key, category="fire",
                            priority=priority, area=COMMUNITY, title=key, first_signal_at=NOW,
                            last_signal_at=NOW),  # type: ignore[arg-type]
                now=NOW, sla=Sla(),
            )  # fmt: skip
            await conn.commit()
            return incident.id

    return asyncio.run(run())


def figures(database_url: str, now: datetime) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        conn = await connect(database_url)
        async with conn:
            stats = await incident_stats(conn, scope="", start=NOW - timedelta(hours=1),
                                         end=NOW + timedelta(hours=1), now=now)  # fmt: skip
        [group] = stats.groups
        return group.model_dump()

    return asyncio.run(run())


def test_statistics_by_definition_do_not_change_after_the_fact(
    admin: httpx.Client, database_url: str
) -> None:
    register_area(admin)
    a = open_test_incident(database_url, "a", "major")  # accept 5 min, resolve 4 h
    b = open_test_incident(database_url, "b", "major")
    c = open_test_incident(database_url, "c", "major")
    open_test_incident(database_url, "d", "emergency")  # accept 1 min, resolve 30 min
    minute = timedelta(minutes=1)
    act(database_url, a, ActionIn(action="accept"), NOW + 2 * minute)  # type: ignore[arg-type]
    # Closed as a false alarm before its accept deadline, never accepted: handled in time.
    act(database_url, b, ActionIn(action="close", reason="false_alarm"), NOW + 3 * minute)  # type: ignore[arg-type]

    # Four minutes in: a and b were handled in time, d's one minute is over (late); c's five
    # minutes are not, so c does not count yet.
    early = figures(database_url, NOW + 4 * minute)
    assert (early["accept_determined"], early["accepted_on_time"]) == (3, 2)
    assert (early["close_determined"], early["closed_on_time"]) == (1, 1)
    act(database_url, c, ActionIn(action="accept"), NOW + 10 * minute)  # type: ignore[arg-type]
    act(database_url, a, ActionIn(action="close", reason="resolved"), NOW + 60 * minute)  # type: ignore[arg-type]
    # Five hours in: c was accepted late, d's accept deadline passed; c and d missed the
    # resolve deadline. a and b still count as they did.
    late = figures(database_url, NOW + 5 * 60 * minute)
    assert (late["accept_determined"], late["accepted_on_time"]) == (4, 2)
    assert late["on_time_accept_rate"] == 0.5
    assert (late["close_determined"], late["closed_on_time"]) == (4, 2)
    assert late["closure_rate"] == 0.5
    assert late["accept_mean_s"] == pytest.approx((120 + 600) / 2)
    assert late["close_mean_s"] == pytest.approx((3600 + 180) / 2)
    assert late["by_status"] == {"closed": 2, "accepted": 1, "reported": 1}


def test_an_incident_past_both_deadlines_escalates_once_a_tick(
    admin: httpx.Client, database_url: str
) -> None:
    register_area(admin)
    incident = open_test_incident(database_url, "both", "emergency")

    async def tick(now: datetime) -> list[str]:
        conn = await connect(database_url)
        async with conn, conn.transaction():
            return [e.reason for e in await escalate_overdue(conn, now, Sla())]

    assert asyncio.run(tick(NOW + timedelta(minutes=31))) == ["accept_overdue+resolve_overdue"]
    assert asyncio.run(tick(NOW + timedelta(minutes=31, seconds=5))) == []
    shown = admin.get(f"/api/v1/incidents/{incident}").json()
    assert shown["escalations"] == 1 and shown["escalated_to"] == COMMUNITY[:9]


def test_a_count_rule_lists_its_signals(live: Any, admin: httpx.Client) -> None:
    rule = live(rule_doc("three-listed", threshold={"count": 3, "within": "60s"}))
    rule.run([S(0), S(10), S(20)], until=30)
    assert rule.incidents() == [(B3, 3, "major")]
    [incident] = admin.get("/api/v1/incidents").json()["items"]
    assert incident["signal_count"] == 3 and len(incident["evidence"]) == 3
    held = admin.get(f"/api/v1/incidents/{incident['id']}/signals").json()
    assert [s["kind"] for s in held] == ["smoke_alarm"] * 3


def test_active_silences_are_the_ones_in_force(admin: httpx.Client) -> None:
    register_area(admin)
    now = datetime.now(UTC)
    spans = {"now": (now - timedelta(minutes=5), now + timedelta(minutes=5)),
             "later": (now + timedelta(hours=1), now + timedelta(hours=2)),
             "over": (now - timedelta(hours=2), now - timedelta(hours=1))}  # fmt: skip
    for reason, (start, end) in spans.items():
        admin.post("/api/v1/silences", json={"matcher": {"kind": ["smoke_alarm"]}, "reason": reason,
                                             "starts_at": start.isoformat(),
                                             "ends_at": end.isoformat()})  # fmt: skip
    active = admin.get("/api/v1/silences", params={"active": "true"}).json()["items"]
    assert [s["reason"] for s in active] == ["now"]
    assert len(admin.get("/api/v1/silences").json()["items"]) == 3


def test_deadlines_per_priority_are_a_setting(admin: httpx.Client, database_url: str) -> None:
    settings = Settings(sla_major="2m/1h", _env_file=None)  # type: ignore[call-arg]
    sla = Sla.from_settings(settings)
    assert (sla["major"].accept, sla["major"].resolve) == (timedelta(minutes=2), timedelta(hours=1))  # type: ignore[index]
    register_area(admin)
    driver = RulesDriver(database_url, now=at(0), sla=sla)
    try:
        seed(database_url)
        driver.restart()
        driver.feed([S(0).signal()])
        [row] = incident_rows(database_url)
        assert row["accept_by"] - row["created_at"] == timedelta(minutes=2)
    finally:
        driver.close()
    from hub.settings import SettingsError, load_settings

    for bad in ("5m", "1h/5m", "soon/1h"):
        with pytest.raises(SettingsError, match="SB_SLA_MAJOR"):
            load_settings(sla_major=bad, _env_file=None)


# --- 7. bounded inputs -----------------------------------------------------------------------


def nested(levels: int) -> dict[str, Any]:
    condition: dict[str, Any] = {"kind": ["smoke_alarm"]}
    for _ in range(levels):
        condition = {"any": [condition]}
    return condition


def test_documents_that_could_poison_the_hub_are_refused(admin: httpx.Client) -> None:
    deep = admin.post("/api/v1/rules", json=rule_doc("deep", match=nested(150)))
    assert deep.status_code == 422 and "64 levels" in deep.json()["error"]["message"]
    too_many = admin.post("/api/v1/rules", json=rule_doc("anyall", match=nested(5)))
    assert too_many.status_code == 422
    assert "at most 4" in json.dumps(too_many.json()), too_many.text
    bomb = "\n".join(
        ["a: &a [x, x, x, x, x, x, x, x]"]
        + [f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]"
           for i in range(8)]
        + ["id: bomb", "name: bomb", "match: {kind: [smoke_alarm]}",
           "incident: {category: fire, priority: major, title: t}"]
    )  # fmt: skip
    yaml_bomb = admin.post("/api/v1/rules", content=bomb.encode(),
                           headers={"Content-Type": "application/yaml"})  # fmt: skip
    assert yaml_bomb.status_code == 422 and "aliases" in yaml_bomb.json()["error"]["message"]
    huge = admin.post("/api/v1/rules", content=b" " * 70_000 + b"{}",
                      headers={"Content-Type": "application/json"})  # fmt: skip
    assert huge.status_code in (413, 422) and "bytes" in huge.json()["error"]["message"]
    assert admin.get("/api/v1/rules").status_code == 200


def test_json_nested_thousands_deep_is_a_422_anywhere(admin: httpx.Client) -> None:
    body = b"[" * 3000 + b"]" * 3000
    for path in (
        "/api/v1/areas",
        "/api/v1/rules",
        "/api/v1/silences",
        "/api/v1/incidents/1/actions",
    ):
        response = admin.post(path, content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 422, (path, response.text)
        assert response.json()["error"]["code"] == "validation_error"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/incidents",
        "/api/v1/devices",
        "/api/v1/units",
        "/api/v1/areas",
        "/api/v1/signals",
        "/api/v1/cameras",
    ],
)
def test_tampered_cursors_and_nul_bytes_are_a_422(admin: httpx.Client, path: str) -> None:
    nuls = base64.urlsafe_b64encode(b"\x00\x00\x00").decode()
    tampered: list[dict[str, str]] = [
        {"cursor": nuls}, {"cursor": "%%%"}, {"cursor": base64.urlsafe_b64encode(b"\xff").decode()},
        {"category": "\x00"}, {"area": "\x00"},
    ]  # fmt: skip
    if path in ("/api/v1/incidents", "/api/v1/signals", "/api/v1/areas"):  # numeric keys
        tampered += [{"cursor": "YWJj"}, {"cursor": base64.urlsafe_b64encode(b"9" * 40).decode()}]
    for params in tampered:
        response = admin.get(path, params=params)
        assert response.status_code == 422, (params, response.text)
        assert response.json()["error"]["code"] == "validation_error"
    assert admin.get(path + "%00").status_code in (404, 422)
    assert admin.get(path).status_code == 200


# --- 8. scope of dispatch and of authentication ----------------------------------------------


def test_dispatch_stays_inside_the_callers_and_the_incidents_scope(
    admin: httpx.Client, database_url: str, client_for: Any
) -> None:
    register_area(admin)
    register_area(admin, OTHER_DISTRICT, "别区社区")
    for unit_id, area, on_duty in (("U-HERE", COMMUNITY, True), ("U-THERE", OTHER_DISTRICT, True),
                                   ("U-THERE-OFF", OTHER_DISTRICT, False)):  # fmt: skip
        admin.post("/api/v1/units", json={"id": unit_id, "name": unit_id, "kind": "fire",
                                          "area": area, "categories": ["fire"],
                                          "on_duty": on_duty})  # fmt: skip
    incident = open_test_incident(database_url, "scope", "major")
    street = client_for("dispatcher", COMMUNITY[:9])
    path = f"/api/v1/incidents/{incident}/actions"
    assert street.post(path, json={"action": "accept"}).status_code == 200
    messages = set()
    for unit in ("U-THERE", "U-THERE-OFF", "U-NOWHERE"):
        refused = street.post(path, json={"action": "dispatch", "unit_id": unit})
        assert refused.status_code == 422
        messages.add(refused.json()["error"]["message"].replace(unit, "X"))
    assert messages == {"no unit X can be dispatched to this incident"}  # nothing told apart
    wide = admin.post(path, json={"action": "dispatch", "unit_id": "U-THERE"})
    assert wide.status_code == 422  # the incident's district has its own units
    assert street.post(path, json={"action": "dispatch", "unit_id": "U-HERE"}).status_code == 200


def test_failed_authentications_are_limited_per_client(settings: Settings) -> None:
    strict = settings.model_copy(update={"auth_failure_limit": 20})
    with api_server(strict) as url:
        answers = [httpx.get(f"{url}/api/v1/areas", headers={"Authorization": f"Bearer sb_{i}"})
                   for i in range(30)]  # fmt: skip
        codes = [a.status_code for a in answers]
        assert codes[:20] == [401] * 20 and set(codes[20:]) == {429}
        assert int(answers[-1].headers["Retry-After"]) >= 1
        assert answers[-1].json()["error"]["code"] == "too_many_requests"
        # While over its budget, the client is refused whatever it sends.
        right = httpx.get(f"{url}/api/v1/areas", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert right.status_code == 429


# --- 9. device tags ----------------------------------------------------------------------------


def test_where_tags_match_the_devices_registry_tags(admin: httpx.Client, database_url: str) -> None:
    from ingest.decode import Message
    from ingest.pipeline import Pipeline
    from ingest.registry_view import RegistryView

    register_area(admin)
    for device_id, vendor in (("SD-ACME", "acme"), ("SD-OTHER", "other")):
        admin.post("/api/v1/devices", json={"id": device_id, "type": "smoke_sensor",
                                            "area": COMMUNITY, "building": device_id,
                                            "tags": {"vendor": vendor, "pilot": True}})  # fmt: skip
    created = admin.post("/api/v1/rules", json=rule_doc(
        "acme-only", match={"kind": ["smoke_alarm"], "where": {"tags": {"vendor": "acme",
                                                                        "pilot": "true"}}}))  # fmt: skip
    assert created.status_code == 201, created.text
    driver = RulesDriver(database_url, now=datetime.now(UTC))

    async def ingest() -> None:
        pipeline = Pipeline(RegistryView(), b"secret")
        now = datetime.now(UTC)
        body = {"seq": 1, "ts": int(now.timestamp() * 1000), "type": "smoke_alarm"}
        conn = await connect(database_url)
        async with conn:
            await pipeline.process(conn, [
                Message(f"sb/{COMMUNITY}/{d}/event", json.dumps(body).encode(), now)
                for d in ("SD-ACME", "SD-OTHER")
            ])  # fmt: skip

    try:
        asyncio.run(ingest())
        driver.step(datetime.now(UTC))
        rows = incident_rows(database_url)
        assert [r["building"] for r in rows if r["rule_id"] == "acme-only"] == ["SD-ACME"]
    finally:
        driver.close()
