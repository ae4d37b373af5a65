"""ID-card reads answered: every read gets its verdict on the reader's own `cmd` topic once it
is committed (real mosquitto, real consumer, real PostgreSQL); registers decide
`unregistered`; a reader that was away gets its pending verdict; no number or full name
anywhere, in the verdicts, the database or the log."""

from __future__ import annotations

import json
import logging
import queue
import random
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from hub.secret import hmac_key
from hub.settings import MqttUrl, Settings
from idcard.numbers import mask_name
from simulator.fleet import random_id_number
from tests.ingest_helpers import Publisher, running_consumer, wait_for
from tests.pg_tools import dump_data, pg_dump_for
from tests.test_registry_api import COMMUNITY, assert_error, register_area

NEIGHBOUR = "440311001003"  # keeps no register
ELSEWHERE = "440305001001"  # another district
READER, OTHER_READER = "RD-V1", "RD-V2"
RNG = random.Random(22)
RESIDENT, STRANGER, WANTED, FAR_WANTED = (random_id_number(RNG) for _ in range(4))
BAD = random_id_number(RNG, valid=False)
VERDICT_KEYS = {"type", "read_seq", "verdict", "masked_id", "masked_name", "level", "message",
                "ts"}  # fmt: skip


def now_ms() -> int:
    return int(time.time() * 1000)


@contextmanager
def reader(broker: MqttUrl, device_id: str, area: str = COMMUNITY, *, client_id: str | None = None,
           raw: queue.Queue[bytes] | None = None) -> Iterator[queue.Queue[dict[str, Any]]]:  # fmt: skip
    """The wristband: a persistent MQTT 5 session subscribed QoS 1 to its own cmd topic
    (`raw` also gets each message's bytes)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or uuid.uuid4().hex,
                         protocol=mqtt.MQTTv5)  # fmt: skip
    inbox: queue.Queue[dict[str, Any]] = queue.Queue()
    subscribed = queue.Queue[bool]()

    def received(c: mqtt.Client, u: Any, m: mqtt.MQTTMessage) -> None:
        if raw is not None:
            raw.put(m.payload)
        inbox.put(json.loads(m.payload))

    client.on_message = received
    client.on_subscribe = lambda c, u, mid, rc, p: subscribed.put(True)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    client.connect(broker.host, broker.port, clean_start=False, properties=props)
    client.loop_start()
    client.subscribe(f"sb/{area}/{device_id}/cmd", qos=1)
    subscribed.get(timeout=5)
    try:
        yield inbox
    finally:
        client.disconnect()
        client.loop_stop()


def read(pub: Publisher, seq: int, number: str, *, device: str = READER, area: str = COMMUNITY,
         **card: Any) -> None:  # fmt: skip
    pub.send(f"sb/{area}/{device}/event", {
        "seq": seq, "ts": now_ms(), "type": "id_read", "operator": "GW-0193",
        "card": {"id_number": number, "name": "欧阳娜娜", "valid_to": "20400101", **card}})  # fmt: skip


@pytest.fixture
def key(settings: Settings) -> bytes:
    """The API's HMAC key: the consumer hashes cards as the registers and lists were."""
    return hmac_key(settings)


@pytest.fixture
def community(admin: httpx.Client) -> httpx.Client:
    for code, name in ((COMMUNITY, "楼村社区"), (NEIGHBOUR, "新桥社区"), (ELSEWHERE, "南山社区")):
        register_area(admin, code, name)
    for device_id, area in ((READER, COMMUNITY), (OTHER_READER, NEIGHBOUR)):
        created = admin.post("/api/v1/devices", json={"id": device_id, "type": "id_reader",
                                                      "area": area})  # fmt: skip
        assert created.status_code == 201, created.text
    assert admin.post("/api/v1/registers", json={"area": COMMUNITY, "name": "楼村社区居民"}
                      ).status_code == 201  # fmt: skip
    added = admin.post(f"/api/v1/registers/{COMMUNITY}/residents",
                       json={"residents": [{"id_number": RESIDENT, "building": "3栋",
                                            "unit": "1201"}]})  # fmt: skip
    assert added.json() == {"added": 1, "updated": 0, "rejected": []}
    for name, area, number, message in (
        ("wanted", "440311", WANTED, "请勿当面处置，立即联系社区民警"),
        ("nanshan-wanted", "440305", FAR_WANTED, None),
    ):
        made = admin.post("/api/v1/watchlists", json={
            "name": name, "label": "在逃人员（内部）", "level": "alert", "area_prefix": area,
            "reader_message": message}).json()  # fmt: skip
        admin.post(f"/api/v1/watchlists/{made['id']}/entries", json={"id_numbers": [number]})
    return admin


def test_every_read_gets_its_verdict(
    community: httpx.Client, database_url: str, mqtt_server: MqttUrl, key: bytes
) -> None:
    with (running_consumer(database_url, mqtt_server, verdicts=True, secret=key),
          reader(mqtt_server, READER) as inbox,
          reader(mqtt_server, OTHER_READER, NEIGHBOUR) as neighbour):  # fmt: skip
        pub = Publisher(mqtt_server)
        read(pub, 1, RESIDENT)
        read(pub, 2, BAD)
        read(pub, 3, STRANGER, valid_to="20200101")
        read(pub, 4, WANTED)
        read(pub, 5, STRANGER)
        read(pub, 6, FAR_WANTED)  # on 南山's list: says nothing in 光明
        read(pub, 7, STRANGER, device=OTHER_READER, area=NEIGHBOUR)  # no register there
        pub.close()
        got = sorted((inbox.get(timeout=10) for _ in range(6)), key=lambda v: v["read_seq"])
        next_door = neighbour.get(timeout=10)

    assert all(set(v) == VERDICT_KEYS and v["type"] == "id_verdict" for v in got)
    assert [(v["read_seq"], v["verdict"]) for v in got] == [
        (1, "ok"), (2, "invalid"), (3, "expired"), (4, "watchlist"), (5, "unregistered"),
        (6, "unregistered")]  # fmt: skip
    assert (got[3]["level"], got[3]["message"]) == ("alert", "请勿当面处置，立即联系社区民警")
    assert got[0]["masked_id"] == RESIDENT[:4] + "*" * 10 + RESIDENT[-4:]
    assert got[0]["masked_name"] == mask_name("欧阳娜娜")
    assert (next_door["read_seq"], next_door["verdict"]) == (7, "ok")
    text = json.dumps([*got, next_door], ensure_ascii=False)
    for secret in (RESIDENT, BAD, STRANGER, WANTED, FAR_WANTED, "欧阳娜娜", "在逃人员"):
        assert secret not in text and secret[:17] not in text
    with psycopg.connect(database_url) as conn:
        kinds = conn.execute("SELECT kind, count(*) FROM signals WHERE source_type = 'id_reader'"
                             " GROUP BY kind ORDER BY kind").fetchall()  # fmt: skip
    # Not in 光明's register: the expired card, the wanted one, the stranger, 南山's wanted.
    assert kinds == [("id_expired", 1), ("id_invalid", 1), ("id_unregistered", 4),
                     ("id_watchlist_hit", 1)]  # fmt: skip


def test_a_verdicts_bytes_carry_chinese_as_utf8(
    community: httpx.Client, database_url: str, mqtt_server: MqttUrl, key: bytes
) -> None:
    """A reader's display shows the message as it is sent: UTF-8, never `\\uXXXX` escapes."""
    raw: queue.Queue[bytes] = queue.Queue()
    with running_consumer(database_url, mqtt_server, verdicts=True, secret=key), \
            reader(mqtt_server, READER, raw=raw):  # fmt: skip
        pub = Publisher(mqtt_server)
        read(pub, 31, WANTED)
        pub.close()
        payload = raw.get(timeout=10)
    assert "请勿当面处置，立即联系社区民警".encode() in payload
    assert mask_name("欧阳娜娜").encode() in payload and b"\\u" not in payload
    assert json.loads(payload)["message"] == "请勿当面处置，立即联系社区民警"


def test_a_reader_that_was_away_gets_its_pending_verdict(
    community: httpx.Client, database_url: str, mqtt_server: MqttUrl, key: bytes
) -> None:
    session = f"wristband-{uuid.uuid4().hex[:8]}"
    with reader(mqtt_server, READER, client_id=session):
        pass  # subscribed once, then gone: the broker keeps its session
    with running_consumer(database_url, mqtt_server, verdicts=True, secret=key):
        pub = Publisher(mqtt_server)
        read(pub, 11, WANTED)  # read on the phone while the wristband is out of range
        pub.close()
        wait_for(database_url, "SELECT count(*) FROM id_reads WHERE verdict IS NOT NULL",
                 lambda n: n == 1)  # fmt: skip
        time.sleep(0.3)
    with reader(mqtt_server, READER, client_id=session) as inbox:
        verdict = inbox.get(timeout=10)
    assert (verdict["read_seq"], verdict["verdict"]) == (11, "watchlist")


def test_a_read_delivered_again_is_answered_again(
    community: httpx.Client, database_url: str, mqtt_server: MqttUrl, key: bytes
) -> None:
    with running_consumer(database_url, mqtt_server, verdicts=True, secret=key), \
            reader(mqtt_server, READER) as inbox:  # fmt: skip
        pub = Publisher(mqtt_server)
        body = {"seq": 21, "ts": now_ms(), "type": "id_read",
                "card": {"id_number": BAD, "name": "欧阳娜娜"}}  # fmt: skip
        pub.send(f"sb/{COMMUNITY}/{READER}/event", body)
        first = inbox.get(timeout=10)
        pub.send(f"sb/{COMMUNITY}/{READER}/event", body)  # as after a lost PUBACK
        again = inbox.get(timeout=10)
        pub.close()
    assert first == again and first["verdict"] == "invalid"
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM id_reads").fetchone() == (1,)


def test_register_uploads_report_bad_rows_without_storing_them(
    community: httpx.Client, client_for: Any
) -> None:
    path = f"/api/v1/registers/{COMMUNITY}/residents"
    report = community.post(path, json={"residents": [
        {"id_number": STRANGER, "building": "5栋"}, {"id_number": BAD},
        {"id_number": "not a number"}, {"id_number": RESIDENT, "building": "9栋", "unit": "101"},
    ]}).json()  # fmt: skip
    assert (report["added"], report["updated"]) == (1, 1)
    assert [(p["row"], "check digit" in p["message"]) for p in report["rejected"]] == [
        (1, True), (2, False)]  # fmt: skip
    assert BAD not in json.dumps(report)

    csv = ("\ufeffid_number,building,unit\n" f"{WANTED},7栋,301\n" f"{BAD},7栋,302\n"
           f"{FAR_WANTED},7栋,303,extra\n" ",7栋,304\n")  # fmt: skip
    imported = community.post(f"/api/v1/registers/{COMMUNITY}/import", content=csv.encode(),
                              headers={"Content-Type": "text/csv"})  # fmt: skip
    assert imported.status_code == 200, imported.text
    body = imported.json()
    assert body["added"] == 1 and [p["row"] for p in body["rejected"]] == [3, 4, 5]
    for hostile in (b"\xff\xfe\x00garbage", b"no,header\n1,2\n", b""):
        response = community.post(f"/api/v1/registers/{COMMUNITY}/import", content=hostile,
                                  headers={"Content-Type": "text/csv"})  # fmt: skip
        assert_error(response, 422, "validation_error")

    listed = community.get(path).json()["items"]
    assert len(listed) == 3 and all("*" * 10 in r["id_masked"] for r in listed)
    assert {r["building"] for r in listed} == {"5栋", "7栋", "9栋"}
    assert community.get(f"/api/v1/registers/{COMMUNITY}").json()["residents"] == 3
    assert_error(client_for("viewer", COMMUNITY).get(path), 403, "forbidden")
    assert_error(client_for("operator", "440305").get(path), 404, "not_found")
    assert_error(community.post("/api/v1/registers", json={"area": COMMUNITY, "name": "again"}),
                 409, "conflict")  # fmt: skip
    assert_error(community.post("/api/v1/registers", json={"area": "440311009009", "name": "x"}),
                 422, "validation_error", "not registered")  # fmt: skip
    gone = listed[0]["id_hash"]
    assert community.delete(f"{path}/{gone}").status_code == 204
    assert_error(community.delete(f"{path}/{gone}"), 404, "not_found")


def test_a_thousand_reads_leave_no_number_or_name_in_clear(
    community: httpx.Client, database_url: str, mqtt_server: MqttUrl, key: bytes,
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    pg_dump_for(database_url)  # skips before the work when there is no pg_dump to read it
    rng = random.Random(1000)
    cards = [(random_id_number(rng, valid=rng.random() > 0.1), f"司马{rng.choice('光明宝安')}{i}")
             for i in range(1000)]  # fmt: skip
    caplog.set_level(logging.DEBUG)
    with running_consumer(database_url, mqtt_server, verdicts=True, secret=key), \
            reader(mqtt_server, READER) as inbox:  # fmt: skip
        pub = Publisher(mqtt_server, in_flight=200)
        for seq, (number, name) in enumerate(cards, start=100):
            pub.client.publish(f"sb/{COMMUNITY}/{READER}/event", json.dumps({
                "seq": seq, "ts": now_ms(), "type": "id_read",
                "card": {"id_number": number, "name": name}}), qos=1)  # fmt: skip
        verdicts = [inbox.get(timeout=30) for _ in cards]
        pub.close()
    assert sorted(v["read_seq"] for v in verdicts) == list(range(100, 1100))
    dump = dump_data(database_url)
    logged = caplog.text + "".join(capfd.readouterr())
    said = json.dumps(verdicts, ensure_ascii=False)
    for number, name in cards:
        for where in (dump, logged, said):
            assert number[:17] not in where and name not in where


# Zero of each digit script a number may arrive in: fullwidth (an IME's full-width mode),
# Arabic-Indic, Extended Arabic-Indic, Devanagari, Bengali, Thai, Myanmar and the
# mathematical bold digits a rich-text paste can carry.
DIGIT_SCRIPTS = {"fullwidth": 0xFF10, "arabic_indic": 0x0660, "persian": 0x06F0,
                 "devanagari": 0x0966, "bengali": 0x09E6, "thai": 0x0E50, "myanmar": 0x1040,
                 "math_bold": 0x1D7CE}  # fmt: skip


def in_script(number: str, script: str) -> str:
    """`number` written in `script`'s digits, its check character X as that script has it."""
    zero = DIGIT_SCRIPTS[script]
    check = {"X": "Ｘ" if script == "fullwidth" else "x"}.get(number[-1], number[-1])
    return "".join(chr(zero + int(d)) for d in number[:-1]) + (
        chr(zero + int(check)) if check.isdigit() else check)  # fmt: skip


def ending_in_x(rng: random.Random) -> str:
    while not (number := random_id_number(rng)).endswith("X"):
        pass
    return number


def test_every_unicode_decimal_digit_reads_as_its_ascii_digit() -> None:
    from idcard import numbers as idcard

    decimals = [chr(c) for c in range(0x110000) if chr(c).isdecimal()]
    assert len(decimals) > 600  # every script Unicode knows, not a chosen few
    for digit in decimals:
        value = idcard.normalise(digit * 17 + "ｘ")
        assert value == str(int(digit)) * 17 + "X", hex(ord(digit))
    number = ending_in_x(random.Random(3))
    for script in DIGIT_SCRIPTS:
        assert idcard.checked(f" {in_script(number, script)}\u3000") == number
    with pytest.raises(idcard.NotAnIdNumber):
        idcard.normalise("４４０３" + "a" * 14)


def test_numbers_in_any_digits_hit_lists_and_registers_and_stay_hashed(
    community: httpx.Client, database_url: str, mqtt_server: MqttUrl, key: bytes
) -> None:
    rng = random.Random(32)
    scripts = list(DIGIT_SCRIPTS)
    listed = {s: ending_in_x(rng) if i % 2 else random_id_number(rng)
              for i, s in enumerate(scripts)}  # fmt: skip
    registered = {s: random_id_number(rng) for s in scripts}
    imported = {s: ending_in_x(rng) for s in scripts}
    wanted_id = next(w["id"] for w in community.get("/api/v1/watchlists").json()
                     if w["name"] == "wanted")  # fmt: skip
    added = community.post(f"/api/v1/watchlists/{wanted_id}/entries", json={
        "id_numbers": [in_script(n, s) for s, n in listed.items()]})  # fmt: skip
    assert (added.json()["added"], added.json()["rejected"]) == (len(scripts), []), added.text
    path = f"/api/v1/registers/{COMMUNITY}"
    report = community.post(f"{path}/residents", json={"residents": [
        {"id_number": in_script(n, s)} for s, n in registered.items()]}).json()  # fmt: skip
    assert report == {"added": len(scripts), "updated": 0, "rejected": []}
    csv = "id_number,building,unit\n" + "".join(
        f"{in_script(n, s)},8栋,{i}\n" for i, (s, n) in enumerate(imported.items())
    )
    body = community.post(f"{path}/import", content=csv.encode(),
                          headers={"Content-Type": "text/csv"}).json()  # fmt: skip
    assert (body["added"], body["rejected"]) == (len(scripts), [])

    expected: list[tuple[str, str]] = []  # (number as read, verdict)
    for i, script in enumerate(scripts):
        other = scripts[(i + 1) % len(scripts)]
        expected += [
            (in_script(WANTED, script), "watchlist"),  # listed in ASCII, read in a script
            (listed[script], "watchlist"),  # listed in a script, read in ASCII
            (in_script(listed[script], other), "watchlist"),  # and in another script
            (in_script(RESIDENT, script), "ok"),
            (in_script(registered[script], other), "ok"),
            (in_script(imported[script], script), "ok"),
            (in_script(BAD, script), "invalid"),  # a wrong check digit stays wrong
        ]
    with (running_consumer(database_url, mqtt_server, verdicts=True, secret=key),
          reader(mqtt_server, READER) as inbox):  # fmt: skip
        pub = Publisher(mqtt_server)
        for seq, (number, _) in enumerate(expected, start=500):
            read(pub, seq, number)
        pub.close()
        got = {v["read_seq"]: v for v in (inbox.get(timeout=20) for _ in expected)}
    verdicts = [(number, got[seq]["verdict"]) for seq, (number, _) in
                enumerate(expected, start=500)]  # fmt: skip
    assert verdicts == expected
    assert got[500]["masked_id"] == WANTED[:4] + "*" * 10 + WANTED[-4:]

    found = community.post("/api/v1/id-reads/search",
                           json={"id_number": in_script(WANTED, "thai")}).json()  # fmt: skip
    assert len(found) == len(scripts)
    masked = in_script(WANTED, "fullwidth")
    by_mask = community.get("/api/v1/id-reads", params={
        "id_masked": masked[:4] + "*" * 10 + masked[-4:]}).json()  # fmt: skip
    assert len(by_mask) == len(scripts)

    stored = everything_stored(database_url)
    clear = [WANTED, RESIDENT, BAD, *listed.values(), *registered.values(), *imported.values()]
    for number in clear:
        for script in scripts:
            assert number[:17] not in stored and in_script(number, script)[:17] not in stored


def everything_stored(database_url: str) -> str:
    """Every row of every table of the database, as text."""
    with psycopg.connect(database_url) as conn:
        tables = [row[0] for row in conn.execute(
            "SELECT quote_ident(table_schema) || '.' || quote_ident(table_name)"
            " FROM information_schema.tables WHERE table_schema NOT IN"
            " ('pg_catalog', 'information_schema') AND table_type = 'BASE TABLE'")]  # fmt: skip
        return "\n".join(str(row[0]) for table in tables
                         for row in conn.execute(f"SELECT t::text FROM {table} t"))  # fmt: skip
