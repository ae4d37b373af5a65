"""A hostile MQTT corpus, through the real broker and consumer: every kind of bad message is
refused with its reason beside good messages that all land, and no personal data survives
anywhere in the database (a pg_dump of it is searched)."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import httpx
import psycopg
import pytest

from hub.settings import MqttUrl
from tests.eventually import eventually
from tests.ingest_helpers import Publisher, running_consumer, wait_for
from tests.pg_tools import dump_data, pg_dump_for
from tests.test_registry_api import COMMUNITY, register_area

OTHER = "440311002001"
ID = "11010519491231002X"  # the GB 11643 standard's own example
NAME = "张三丰"


def now() -> int:
    return int(time.time() * 1000)


def t(device: str, channel: str = "telemetry", area: str = COMMUNITY) -> str:
    return f"sb/{area}/{device}/{channel}"


def card(**fields: Any) -> dict[str, Any]:
    return {"id_number": ID, "name": NAME, "sex": "男", "nation": "汉", "birth": "19491231",
            "address": "北京市朝阳区幸福路1号", "valid_from": "20200101", "valid_to": "20400101",
            **fields}  # fmt: skip


def corpus(n: int) -> list[tuple[str, str, bytes | dict[str, Any] | list[Any]]]:
    """(expected reason, topic, payload): more than forty kinds of bad message; `n`, the
    time the first good messages carry."""
    big = b'{"seq": 1, "ts": %d, "pad": "' % n + b"x" * 70_000 + b'"}'
    deep = b"[" * 20_000 + b"]" * 20_000
    return [
        ("bad_json", t("SD-1"), b'{"seq": 1, "ts": '),
        ("bad_json", t("SD-1"), b"\xff\xfe\x00garbage"),
        ("bad_json", t("SD-1"), b""),
        ("bad_json", t("SD-1"), deep),
        ("bad_json", t("SD-1"), b'{"seq": 1, "ts": 1, "smoke": "\\ud800"}'),
        ("not_object", t("SD-1"), [1, 2, 3]),
        ("not_object", t("SD-1"), b'"a string"'),
        ("not_object", t("SD-1"), b"42"),
        ("not_object", t("SD-1"), b"null"),
        ("too_large", t("SD-1"), big),
        # (Topics off `sb/+/+/+` never reach the hub: the subscription filters them.)
        ("bad_topic", f"sb/{COMMUNITY}//telemetry", {"seq": 1, "ts": n}),
        ("bad_topic", f"sb/{COMMUNITY}/SD-1/", {"seq": 1, "ts": n}),
        ("bad_topic", "sb/44031100100X/SD-1/telemetry", {"seq": 1, "ts": n}),
        ("bad_topic", "sb/440311000/SD-1/telemetry", {"seq": 1, "ts": n}),
        ("bad_topic", f"sb/{COMMUNITY}/{'D' * 65}/telemetry", {"seq": 1, "ts": n}),
        ("bad_topic", f"sb/{COMMUNITY}/SD$1/telemetry", {"seq": 1, "ts": n}),
        ("bad_topic", t("SD-1", "telemetree"), {"seq": 1, "ts": n}),
        ("bad_topic", "sb//SD-1/telemetry", {"seq": 1, "ts": n}),
        ("unknown_device", t("SD-NOBODY"), {"seq": 1, "ts": n, "smoke": 0.1}),
        ("disabled_device", t("SD-OFF"), {"seq": 1, "ts": n, "smoke": 0.1}),
        ("area_mismatch", t("SD-1", area=OTHER), {"seq": 1, "ts": n, "smoke": 0.1}),
        ("type_mismatch", t("SD-1", "event"), {"seq": 90, "ts": n, "type": "intrusion"}),
        ("type_mismatch", t("CAM-1", "event"), {"seq": 1, "ts": n, "type": "smoke_alarm"}),
        ("schema", t("SD-1"), {"seq": -1, "ts": n}),
        ("schema", t("SD-1"), {"seq": 1.5, "ts": n}),
        ("schema", t("SD-1"), {"seq": "7", "ts": n}),
        ("schema", t("SD-1"), {"seq": 2**63, "ts": n}),
        ("schema", t("SD-1"), {"ts": n, "smoke": 0.1}),
        ("schema", t("SD-1"), {"seq": 91, "ts": n, "smoke": 101}),
        ("schema", t("SD-1"), {"seq": 92, "ts": n, "temp_c": -99}),
        ("schema", t("SD-1"), {"seq": 93, "ts": n, "battery_pct": -1}),
        ("schema", t("SD-1"), {"seq": 94, "ts": n, "rssi_dbm": 5}),
        ("schema", t("SD-1"), b'{"seq": 95, "ts": %d, "smoke": Infinity}' % n),
        ("schema", t("SD-1"), b'{"seq": 96, "ts": %d, "smoke": NaN}' % n),
        ("schema", t("SD-1"), b'{"seq": 97, "ts": %d, "temp_c": 1e309}' % n),
        ("schema", t("SD-1", "event"), {"seq": 98, "ts": n, "type": "explosion"}),
        ("schema", t("SD-1", "event"), {"seq": 99, "ts": n}),
        ("schema", t("SD-1", "status"), {"online": "yes"}),
        ("schema", t("SD-1", "status"), {"fw": "1.0"}),
        ("schema", t("SD-1", "status"), {"online": True, "fw": "x" * 65}),
        ("schema", t("CAM-1", "event"), {"seq": 2, "ts": n, "type": "crowd", "confidence": 2}),
        ("schema", t("CAM-1", "event"), {"seq": 3, "ts": n, "type": "crowd", "bbox": [0, 0, 1]}),
        ("schema", t("R-1", "event"), {"seq": 2, "ts": n, "type": "id_read"}),
        ("schema", t("R-1", "event"), {"seq": 3, "ts": n, "type": "id_read",
                                       "card": card(valid_to="someday")}),
        ("bad_timestamp", t("SD-1"), {"seq": 100, "ts": n + 3_600_000}),
        ("bad_timestamp", t("SD-1"), {"seq": 101, "ts": n - 40 * 86_400_000}),
        ("bad_timestamp", t("SD-1"), {"seq": 102, "ts": "2026-11-22T16:40:00"}),
        ("bad_timestamp", t("SD-1"), {"seq": 103, "ts": "yesterday"}),
        ("bad_timestamp", t("SD-1"), {"seq": 104, "ts": True}),
        # Known fields of the wrong JSON type: no coercion of booleans or text to numbers.
        ("schema", t("SD-1"), {"seq": 105, "ts": n, "battery_pct": True}),
        ("schema", t("SD-1"), {"seq": 106, "ts": n, "battery_pct": False}),
        ("schema", t("SD-1"), {"seq": 107, "ts": n, "smoke": "0.5"}),
        ("schema", t("SD-1"), {"seq": 108, "ts": n, "temp_c": "25"}),
        ("schema", t("SD-1", "event"), {"seq": 109, "ts": n, "type": "smoke_alarm", "smoke": True}),
        ("schema", t("R-1"), {"seq": 1, "ts": n, "lat": "22.5", "lon": 113.9}),
        ("schema", t("R-1"), {"seq": 2, "ts": n, "battery_pct": True}),
        ("schema", t("R-1", "event"), {"seq": 6, "ts": n, "type": "id_read", "lat": "22.5",
                                       "lon": 113.9, "card": card()}),
        ("schema", t("CAM-1", "event"), {"seq": 4, "ts": n, "type": "crowd", "count": "3"}),
        ("schema", t("CAM-1", "event"), {"seq": 5, "ts": n, "type": "crowd", "confidence": True}),
        ("schema", t("CAM-1", "event"), {"seq": 6, "ts": n, "type": "crowd", "track_id": 1.5}),
        ("schema", t("CAM-1"), {"seq": 7, "ts": n, "fps": "25"}),
        ("bad_timestamp", t("SD-1"), {"seq": 110, "ts": f"{n}.5"}),  # fractional ms in text
        ("bad_timestamp", t("SD-1"), {"seq": 111, "ts": f"{n / 1000}"}),  # seconds in text
        ("bad_timestamp", t("SD-1"), {"seq": 112, "ts": f" {n}"}),
        ("bad_id_number", t("R-1", "event"), {"seq": 4, "ts": n, "type": "id_read",
                                              "card": card(id_number="1101 0519 4912 3100 2X")}),
        ("bad_id_number", t("R-1", "event"), {"seq": 5, "ts": n, "type": "id_read",
                                              "card": card(id_number=ID + "9")}),
        ("duplicate", *good(1, n)[0]),  # the first good message again, unchanged
        ("duplicate", *good(1, n)[1]),
        ("schema", t("SD-1", "status"), {"online": True, "fw": "1.0\u0000evil"}),
    ]  # fmt: skip


# Hostile shapes of personal data: nothing of them may be kept anywhere.
PERSONAL = [
    (t("R-1", "event"), b'{"seq": 6, "ts": 1, "type": "id_read", "card": {"id_number": "%s", "name": "%s"'
     % (ID.encode(), NAME.encode())),  # bad JSON from a reader
    (t("R-1", "event"), {"seq": 7, "type": "id_read", "card": card()}),  # no ts
    (t("R-1", "event"), {"seq": 8, "ts": 1, "type": "id_read", "person": {"xm": NAME, "sfz": ID}}),
    (t("R-1", "event"), {"seq": 9, "ts": now(), "type": "id_read", "card": card(id_number=ID.lower()),
                         "note": f"{NAME} {ID[:6]}-{ID[6:14]}-{ID[14:]}"}),
    (t("SD-1"), {"seq": 200, "ts": 1, "owner": NAME, "phone": "1380013800", "ref": ID}),  # a smoke
    (t("SD-1"), {"seq": 201, "ts": 1, "x": "110105 19491231 002X"}),  # split, from a smoke sensor
    (f"sb/{COMMUNITY}/{ID}/event", {"seq": 1, "ts": now()}),  # the number as a device id
    (f"sb/{NAME}/R-1/event", {"seq": 1, "ts": now()}),  # a name as an area
    (t("R-9"), {"seq": 1, "ts": now(), "card": card()}),  # an unregistered reader
]  # fmt: skip


def good(seq: int, ts: int | None = None) -> list[tuple[str, dict[str, Any]]]:
    at = ts or now()
    return [
        (t("SD-1"), {"seq": seq, "ts": at, "smoke": 0.05, "battery_pct": 90}),
        (t("SD-2"), {"seq": seq, "ts": at, "smoke": 0.06}),
    ]


@pytest.fixture
def hostile_world(admin: httpx.Client) -> httpx.Client:
    register_area(admin)
    register_area(admin, OTHER, "外街社区")
    for device in (
        {"id": "SD-1", "type": "smoke_sensor", "area": COMMUNITY},
        {"id": "SD-2", "type": "smoke_sensor", "area": COMMUNITY},
        {"id": "R-1", "type": "id_reader", "area": COMMUNITY},
    ):
        assert admin.post("/api/v1/devices", json=device).status_code == 201
    admin.post("/api/v1/devices", json={"id": "SD-OFF", "type": "smoke_sensor", "area": COMMUNITY})
    admin.patch("/api/v1/devices/SD-OFF", json={"enabled": False})
    admin.post(
        "/api/v1/cameras", json={"id": "CAM-1", "area": COMMUNITY, "stream_url": "file:///x"}
    )
    return admin


def test_every_kind_of_bad_message_is_refused_and_every_good_one_lands(
    hostile_world: httpx.Client, database_url: str, mqtt_server: MqttUrl
) -> None:
    first = now()
    bad = corpus(first)
    assert len({(r, str(p)[:40], topic) for r, topic, p in bad}) >= 40
    with running_consumer(database_url, mqtt_server):
        pub = Publisher(mqtt_server)
        for topic, body in good(1, first):
            pub.send(topic, body)
        for i, (_, topic, payload) in enumerate(bad):
            pub.send(topic, payload)
            for good_topic, body in good(i + 2):  # good ones between the bad ones
                pub.send(good_topic, body)
        pub.close()
        sent_good = 2 * (len(bad) + 1)
        wait_for(database_url, "SELECT count(*) FROM uplinks", lambda n: n == sent_good, timeout=30)

        def letters() -> tuple[list[Any], Any]:
            with psycopg.connect(database_url) as conn:
                rows = conn.execute("SELECT reason, topic, detail FROM dead_letters").fetchall()
                return rows, conn.execute("SELECT count(*) FROM readings").fetchone()

        rows, readings = eventually(letters, lambda got: len(got[0]) >= len(bad), timeout=30,
                                    every=0.2, what="every bad message dead-lettered")  # fmt: skip
    expected = Counter(r for r, _, _ in bad)
    reasons = Counter(r for r, _, _ in rows)
    assert reasons == expected, (expected - reasons, reasons - expected, rows)
    assert readings == (3 * (len(bad) + 1),)  # SD-1 sends two readings, SD-2 one


def test_no_personal_data_survives_hostile_card_input(
    hostile_world: httpx.Client, database_url: str, mqtt_server: MqttUrl
) -> None:
    pg_dump_for(database_url)  # skips before the work when there is no pg_dump to read it
    with running_consumer(database_url, mqtt_server):
        pub = Publisher(mqtt_server)
        for topic, payload in PERSONAL:
            pub.send(topic, payload)
        pub.send(t("R-1", "event"), {"seq": 10, "ts": now(), "type": "id_read", "card": card()})
        pub.close()
        wait_for(database_url, "SELECT count(*) FROM id_reads", lambda n: n == 2)
        wait_for(database_url, "SELECT count(*) FROM dead_letters", lambda n: n >= 8)
    dump = dump_data(database_url)
    flat = "".join(ch for ch in dump if ch.isalnum())
    for secret in (ID, ID.lower(), ID[:17], NAME, "三丰", "幸福路", "13800138"):
        assert secret not in dump, secret
    assert ID[:17] not in flat and ID.lower()[:17] not in flat.lower()  # not even split
    assert "1101**********002X" in dump  # the masked form is what is kept
