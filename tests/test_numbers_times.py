"""Numbers and times that are what they claim: every duration the API takes goes through one
bounded parser (an absurd one is a 422 naming the field, never a 500), and a datetime without
an offset means the hub's wall-clock time (SB_TIMEZONE), wherever the API takes one."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from pydantic import BaseModel

from hub.contracts import Schedule
from hub.durations import parse_duration, say
from hub.settings import SettingsError, load_settings
from hub.times import Moment, hub_zone, use_zone
from notify.templates import local_time
from tests.test_registry_api import COMMUNITY, register_area
from tests.test_rules import DESIGN_EXAMPLE

SHANGHAI = ZoneInfo("Asia/Shanghai")
SENSOR = "SD-NT-1"

# Text no duration field may take, whatever its bounds.
HOSTILE = [
    "1000000000000000000000000000000s",
    "99999999999999999999h",
    "9" * 400 + "ms",
    "-5m",
    "1.5h",
    "5",
    "",
    "m",
    "１０m",  # fullwidth digits
    "٣s",  # Arabic-Indic digits
    "10 m",
    "10M",
    "1e3s",
    "0x10s",
    "NaN",
    "10m\u0000",
]
NOT_TEXT: list[Any] = [10, 10.5, True, None, [], {"m": 1}, 10**40]


# --- the parser ----------------------------------------------------------------------------


@pytest.mark.parametrize("text", HOSTILE + NOT_TEXT)
def test_the_parser_refuses_with_a_value_error_only(text: Any) -> None:
    with pytest.raises(ValueError, match=r"duration|longer"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("90s", timedelta(seconds=90)), ("1h30m", timedelta(minutes=90)), ("0s", timedelta(0)),
     ("250ms", timedelta(milliseconds=250)), ("30d", timedelta(days=30)),
     ("0000000000000000000000000010s", timedelta(seconds=10))],
)  # fmt: skip
def test_the_parser_reads_what_it_should(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected
    assert parse_duration(say(expected)) == expected


def test_bounds_are_inclusive_and_named() -> None:
    low, high = timedelta(seconds=10), timedelta(hours=24)
    assert parse_duration("10s", low=low, high=high) == low
    assert parse_duration("24h", low=low, high=high) == high
    with pytest.raises(ValueError, match="shorter than 10 seconds"):
        parse_duration("9s999ms", low=low, high=high)
    with pytest.raises(ValueError, match="longer than 1 day"):
        parse_duration("24h1ms", low=low, high=high)
    with pytest.raises(ValueError, match="longer than 30 days"):
        parse_duration("31d")


# --- every endpoint that takes a duration ---------------------------------------------------


def assert_names_field(response: httpx.Response, field: str) -> None:
    """A 422 in the API's error shape that names `field`."""
    assert response.status_code == 422, (field, response.status_code, response.text)
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    named = [f["field"] for f in error["fields"]] + [error.get("field") or ""]
    assert field in named, (field, error)
    assert "Traceback" not in response.text


def rule_with(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(DESIGN_EXAMPLE)
    doc["match"]["where"]["area_prefix"] = COMMUNITY
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


RULE_DURATIONS = {
    ("threshold", "within"): ["0s"],  # a window has some width
    ("for",): [],
    ("cooldown",): [],
    ("confirm", "within"): ["0s"],
}


@pytest.fixture
def world(admin: httpx.Client) -> dict[str, Any]:
    """A community, a smoke sensor, a stored rule, a webhook channel and an incident."""
    register_area(admin)
    sensor = {"id": SENSOR, "type": "smoke_sensor", "area": COMMUNITY, "building": "3栋"}
    assert admin.post("/api/v1/devices", json=sensor).status_code == 201
    assert admin.post("/api/v1/rules", json=rule_with(("id",), "nt-rule")).status_code == 201
    channel = {"id": "nt-hook", "name": "hook", "kind": "webhook", "area": COMMUNITY,
               "url": "http://127.0.0.1:9/hook", "secret": "whsec-nt"}  # fmt: skip
    assert admin.post("/api/v1/channels", json=channel).status_code == 201, channel
    report = admin.post("/api/v1/incidents", json={
        "area": COMMUNITY, "category": "fire", "title": "smoke in 3栋", "building": "3栋"})  # fmt: skip
    assert report.status_code == 201, report.text
    return {"incident": report.json()["id"]}


def test_rule_durations_out_of_reason_are_422_naming_the_field(
    admin: httpx.Client, world: dict[str, Any]
) -> None:
    for path, extra in RULE_DURATIONS.items():
        field = "body." + ".".join(path)
        for value in [*HOSTILE, *NOT_TEXT, "31d", *extra]:
            doc = rule_with(path, value)
            doc["id"] = "nt-new"
            assert_names_field(admin.post("/api/v1/rules", json=doc), field)
            doc["id"] = "nt-rule"
            assert_names_field(admin.put("/api/v1/rules/nt-rule", json=doc), field)
            draft = admin.post("/api/v1/rules/nt-rule/backtest", json={
                "from": "2026-12-01T00:00:00+08:00", "to": "2026-12-02T00:00:00+08:00",
                "rule": doc})  # fmt: skip
            assert_names_field(draft, "body.rule." + ".".join(path))
    yaml = "id: nt-yaml\nname: y\nmatch: {kind: [smoke_alarm]}\n" \
           "incident: {category: fire, priority: major, title: t}\n" \
           "cooldown: 99999999999999999999h\n"  # fmt: skip
    sent = admin.post("/api/v1/rules", content=yaml.encode(),
                      headers={"Content-Type": "application/yaml"})  # fmt: skip
    assert_names_field(sent, "body.cooldown")
    ok = rule_with(("cooldown",), "30d")
    ok["id"] = "nt-longest"
    assert admin.post("/api/v1/rules", json=ok).status_code == 201


def test_route_repeat_is_bounded(admin: httpx.Client, world: dict[str, Any]) -> None:
    base = {"id": "nt-route", "name": "r", "match": {"events": ["incident.created"]},
            "channels": ["nt-hook"]}  # fmt: skip
    for value in [*HOSTILE, *NOT_TEXT[:-2], "0s", "29s", "1d1s", "30d"]:
        if value is None:
            continue  # no repeat at all is allowed
        assert_names_field(admin.post("/api/v1/routes", json={**base, "repeat": value}),
                           "body.repeat")  # fmt: skip
    assert admin.post("/api/v1/routes", json={**base, "repeat": "30s"}).status_code == 201
    assert_names_field(
        admin.put("/api/v1/routes/nt-route", json={**base, "repeat": "99999999999999999999h"}),
        "body.repeat",
    )


def test_command_ttl_and_duration_are_bounded(admin: httpx.Client, world: dict[str, Any]) -> None:
    url = f"/api/v1/devices/{SENSOR}/commands"
    for value in [*HOSTILE, *NOT_TEXT, "0s", "9s", "24h1s"]:
        sent = admin.post(url, json={"command": "self_test", "ttl": value})
        assert_names_field(sent, "body.ttl")
        silence = admin.post(url, json={"command": "silence", "args": {"duration": value}})
        assert_names_field(silence, "args.duration")
    silence_all = f"/api/v1/incidents/{world['incident']}/silence-sensors"
    for value in [*HOSTILE, *NOT_TEXT[:-2], "59s", "25h"]:
        if value is not None:  # None: the default
            assert_names_field(admin.post(silence_all, json={"duration": value}), "body.duration")
    for value in [*HOSTILE, *NOT_TEXT[:-2], "9s", "24h1s"]:
        if value is not None:
            assert_names_field(admin.post(silence_all, json={"ttl": value}), "body.ttl")
    good = admin.post(url, json={"command": "silence", "args": {"duration": "24h"}, "ttl": "10s"})
    assert good.status_code == 202, good.text


def test_telemetry_bucket_is_bounded(admin: httpx.Client, world: dict[str, Any]) -> None:
    url = f"/api/v1/devices/{SENSOR}/telemetry"
    span = {"from": "2026-12-01T00:00:00+08:00", "to": "2026-12-02T00:00:00+08:00"}
    for value in [*HOSTILE, "0s", "999ms", "32d"]:
        if "\u0000" in value:
            continue  # a NUL in a query string is refused before any handler
        assert_names_field(admin.get(url, params={**span, "bucket": value}), "bucket")
    assert admin.get(url, params={**span, "bucket": "1h30m"}).status_code == 200


def test_settings_durations_and_zone_are_checked() -> None:
    for name, value in [("rules_lateness", "99999999999999999999h"), ("rules_lateness", "2h"),
                        ("notify_give_up", "1000000000000000000000000000000s"),
                        ("notify_give_up", "10s"), ("sla_major", "0s/1h"),
                        ("sla_major", "1m/99999999999999999999h"),
                        ("timezone", "Mars/Olympus"), ("timezone", ""),
                        ("timezone", "../../etc/passwd"), ("timezone", "+08:00")]:  # fmt: skip
        with pytest.raises(SettingsError, match="SB_" + name.upper()):
            load_settings(_env_file=None, **{name: value})
    settings = load_settings(_env_file=None, timezone="Europe/Berlin")
    assert settings.zone == ZoneInfo("Europe/Berlin")
    assert load_settings(_env_file=None).timezone == "Asia/Shanghai"


# --- datetimes without an offset ------------------------------------------------------------


class _Body(BaseModel):
    at: Moment


def test_a_naive_datetime_is_wall_clock_time_in_the_hubs_zone() -> None:
    before = hub_zone()
    try:
        use_zone("Europe/Berlin")
        read = _Body.model_validate
        assert read({"at": "2026-07-01T12:00:00"}).at == datetime(2026, 7, 1, 10, tzinfo=UTC)
        assert read({"at": "2026-12-01T12:00:00"}).at == datetime(2026, 12, 1, 11, tzinfo=UTC)
        # An offset, or epoch seconds, says which instant it is: the zone changes nothing.
        assert read({"at": "2026-12-01T12:00:00Z"}).at == datetime(2026, 12, 1, 12, tzinfo=UTC)
        assert read({"at": 1_796_000_000}).at.tzinfo is not None
        # A schedule's hours without a zone are the hub's hours too, and the document says so.
        assert Schedule(hours="22:00-06:00").tz == "Europe/Berlin"
        with pytest.raises(ValueError, match="IANA"):
            use_zone("Nowhere/Land")
    finally:
        use_zone(str(before))


def test_messages_say_times_in_the_hubs_zone() -> None:
    """A notification's deadlines (accept by, 报到 by) are wall-clock time where the hub is,
    the same zone a datetime without an offset is read in, not Shanghai whatever SB_TIMEZONE."""
    before = hub_zone()
    at = datetime(2026, 12, 1, 12, tzinfo=UTC)
    try:
        assert local_time(at) == "2026-12-01 20:00"
        use_zone("Europe/Berlin")
        assert local_time(at) == "2026-12-01 13:00"
    finally:
        use_zone(str(before))


def test_a_naive_silence_end_is_shanghai_time(admin: httpx.Client) -> None:
    register_area(admin)
    local = datetime.now(SHANGHAI).replace(microsecond=0, tzinfo=None) + timedelta(hours=2)
    created = admin.post("/api/v1/silences", json={
        "matcher": {"kind": ["smoke_alarm"], "area_prefix": COMMUNITY}, "reason": "drill",
        "starts_at": (local - timedelta(hours=3)).isoformat(), "ends_at": local.isoformat(),
    })  # fmt: skip
    assert created.status_code == 201, created.text
    ends = datetime.fromisoformat(created.json()["ends_at"])
    assert ends == local.replace(tzinfo=SHANGHAI)  # not UTC: eight hours earlier than that
    assert ends != local.replace(tzinfo=UTC)
    # In force now: it began an hour ago in Shanghai (read as UTC, it would begin in 7 hours).
    active = admin.get("/api/v1/silences", params={"active": "true"}).json()
    items = active["items"] if isinstance(active, dict) else active
    assert [s["reason"] for s in items] == ["drill"]
    # Mixed: one naive, one with an offset, compared as instants.
    mixed = admin.post("/api/v1/silences", json={
        "matcher": {"kind": ["smoke_alarm"], "area_prefix": COMMUNITY}, "reason": "mixed",
        "starts_at": "2026-12-01T09:00:00", "ends_at": "2026-12-01T01:30:00Z",
    })  # fmt: skip
    assert mixed.status_code == 201, mixed.text  # 09:00 in Shanghai is 01:00 UTC
    backwards = admin.post("/api/v1/silences", json={
        "matcher": {"kind": ["smoke_alarm"], "area_prefix": COMMUNITY}, "reason": "backwards",
        "starts_at": "2026-12-01T09:00:00", "ends_at": "2026-12-01T08:30:00+08:00",
    })  # fmt: skip
    assert_names_field(backwards, "body")


def test_naive_filters_and_ranges_are_read_in_the_hubs_zone(
    admin: httpx.Client, world: dict[str, Any]
) -> None:
    incident = admin.get(f"/api/v1/incidents/{world['incident']}").json()
    created = datetime.fromisoformat(incident["created_at"])
    local = created.astimezone(SHANGHAI).replace(tzinfo=None)
    # `since` a minute before it was created, in Shanghai wall-clock time, finds it; a minute
    # after does not (read as UTC, both would be eight hours off and find it).
    for since, found in ((local - timedelta(minutes=1), 1), (local + timedelta(minutes=1), 0)):
        listed = admin.get("/api/v1/incidents", params={"since": since.isoformat()})
        assert listed.status_code == 200, listed.text
        assert len(listed.json()["items"]) == found, since
    naive_day = {"from": (local - timedelta(hours=1)).isoformat(),
                 "to": (local + timedelta(hours=1)).isoformat()}  # fmt: skip
    for url in ("/api/v1/stats", "/api/v1/rules/nt-rule/stats",
                f"/api/v1/devices/{SENSOR}/telemetry", "/api/v1/signals",
                "/api/v1/dead-letters"):  # fmt: skip
        params = naive_day if "signals" not in url and "dead" not in url else {
            "since": naive_day["from"]}  # fmt: skip
        answered = admin.get(url, params=params)
        assert answered.status_code == 200, (url, answered.text)
    backtest = admin.post("/api/v1/rules/nt-rule/backtest", json=naive_day)
    assert backtest.status_code == 200, backtest.text
    # A range given naive and one given with the offset are the same range.
    aware = {k: v + "+08:00" for k, v in naive_day.items()}
    assert (
        admin.get("/api/v1/stats", params=aware).json()
        == admin.get("/api/v1/stats", params=naive_day).json()
    )
