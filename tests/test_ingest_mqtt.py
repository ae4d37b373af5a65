"""Ingest over a real broker into a real PostgreSQL: dead letters, idempotency, zero loss."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
from prometheus_client import REGISTRY

from hub.settings import MqttUrl
from tests.ingest_helpers import Publisher, running_consumer, wait_for
from tests.services import LocalMosquitto
from tests.test_registry_api import COMMUNITY, register_area

OTHER = "440311001003"


def now_ms() -> int:
    return int(time.time() * 1000)


def telemetry(seq: int, **extra: object) -> dict[str, object]:
    return {"seq": seq, "ts": now_ms(), "smoke": 0.05, "temp_c": 24.0, **extra}


def topic(device: str, channel: str = "telemetry", area: str = COMMUNITY) -> str:
    return f"sb/{area}/{device}/{channel}"


@pytest.fixture
def registry(admin: httpx.Client) -> httpx.Client:
    register_area(admin)
    register_area(admin, OTHER, "另一社区")
    for device_id, kind in (
        ("SD-1", "smoke_sensor"),
        ("SD-OFF", "smoke_sensor"),
        ("RD-1", "id_reader"),
    ):
        admin.post("/api/v1/devices", json={"id": device_id, "type": kind, "area": COMMUNITY})
    admin.patch("/api/v1/devices/SD-OFF", json={"enabled": False})
    return admin


def test_redeliveries_across_batches_written_at_once(
    registry: httpx.Client, database_url: str, mqtt_server: MqttUrl
) -> None:
    """Telemetry batches overlap in the database; a key claimed by a batch still being
    written must not stall the next one (each pair of seqs arrives twice in a row)."""
    seqs = list(range(1, 301))
    order = [seq for start in range(0, 300, 2) for seq in seqs[start : start + 2] * 2]
    bodies = {seq: json.dumps(telemetry(seq)).encode() for seq in seqs}  # a resend: same bytes
    with running_consumer(database_url, mqtt_server, max_batch=2, telemetry_writers=2):
        pub = Publisher(mqtt_server, in_flight=100)
        sent = [pub.client.publish(topic("SD-1"), bodies[seq], qos=1) for seq in order]
        for info in sent:
            info.wait_for_publish(10)
        pub.close()
        count = "SELECT count(*) FROM uplinks WHERE device_id = 'SD-1'"
        wait_for(database_url, count, lambda n: n == 300, timeout=60)
        wait_for(database_url, "SELECT count(*) FROM dead_letters", lambda n: n == 300)
    with psycopg.connect(database_url) as conn:
        readings = conn.execute("SELECT count(*) FROM readings WHERE device_id = 'SD-1'")
        assert readings.fetchone() == (600,)  # smoke and temp_c, once per seq


def test_a_backlog_waits_in_the_broker_not_in_ingest(
    registry: httpx.Client, database_url: str, mqtt_server: MqttUrl
) -> None:
    """With slow commits (a trigger taking 20 ms per batch), the receiver stops reading once
    `max_in_hand` messages are received and not committed; the broker keeps the rest, and
    every message still lands."""
    bound, count = 30, 300
    peak = 0
    with (
        slow_batches(database_url),
        running_consumer(database_url, mqtt_server, max_in_hand=bound, max_batch=10),
    ):
        pub = Publisher(mqtt_server, in_flight=count)
        sent = [
            pub.client.publish(
                topic("SD-1", "event"),
                json.dumps({"seq": seq, "ts": now_ms(), "type": "test"}).encode(),
                qos=1,
            )
            for seq in range(1, count + 1)
        ]
        stored = "SELECT count(*) FROM uplinks WHERE device_id = 'SD-1'"
        with psycopg.connect(database_url, autocommit=True) as conn:
            deadline = time.monotonic() + 30
            while (conn.execute(stored).fetchone() or (0,))[0] < count:  # type: ignore[arg-type]
                assert time.monotonic() < deadline, "the backlog did not drain"
                peak = max(peak, int(REGISTRY.get_sample_value("sb_ingest_in_hand") or 0))
                time.sleep(0.002)
        for info in sent:
            info.wait_for_publish(10)
        pub.close()
    assert bound // 2 < peak <= bound  # it filled up to the bound, and no further


@contextmanager
def slow_batches(database_url: str, seconds: float = 0.02) -> Iterator[None]:
    """Every batch's write into `uplinks` takes `seconds` longer, until the end."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION test_slow() RETURNS trigger LANGUAGE plpgsql AS"
            f" $$ BEGIN PERFORM pg_sleep({seconds}); RETURN NULL; END $$"
        )
        conn.execute(
            "CREATE TRIGGER test_slow AFTER INSERT ON uplinks"
            " FOR EACH STATEMENT EXECUTE FUNCTION test_slow()"
        )
        try:
            yield
        finally:
            conn.execute("DROP TRIGGER test_slow ON uplinks")
            conn.execute("DROP FUNCTION test_slow()")


def test_every_dead_letter_reason_beside_good_messages(
    registry: httpx.Client, database_url: str, mqtt_server: MqttUrl
) -> None:
    with running_consumer(database_url, mqtt_server) as collected:
        pub = Publisher(mqtt_server)
        good = [telemetry(1), telemetry(2, battery_pct=80), telemetry(3)]
        bad = {
            "bad_json": (topic("SD-1"), b'{"seq": 4, "ts": '),
            "not_object": (topic("SD-1"), b"[4, 5]"),
            "too_large": (topic("SD-1"), b'{"seq": 5, "pad": "' + b"x" * 70_000 + b'"}'),
            "bad_topic": ("sb/44031100100X/SD-1/telemetry", b"{}"),
            "unknown_device": (topic("SD-NOBODY"), telemetry(1)),
            "disabled_device": (topic("SD-OFF"), telemetry(1)),
            "area_mismatch": (topic("SD-1", area=OTHER), telemetry(6)),
            "type_mismatch": (
                topic("SD-1", "event"),
                {"seq": 7, "ts": now_ms(), "type": "intrusion"},
            ),
            "schema": (topic("SD-1"), telemetry(8, smoke="lots")),
            "duplicate": (topic("SD-1"), good[1]),  # a redelivery: the same seq and ts
            "bad_timestamp": (topic("SD-1"), {"seq": 9, "ts": now_ms() + 86_400_000}),
            "bad_id_number": (
                topic("RD-1", "event"),
                {
                    "seq": 1,
                    "ts": now_ms(),
                    "type": "id_read",
                    "card": {"id_number": "4403-NOT-AN-ID"},
                },
            ),
        }
        messages = [(topic("SD-1"), good[0]), *bad.values()]
        messages.insert(6, (topic("SD-1"), good[1]))
        messages.append((topic("SD-1"), good[2]))
        for t, payload in messages:
            pub.send(t, payload)
        pub.close()
        wait_for(database_url, "SELECT count(*) FROM dead_letters", lambda n: n >= len(bad))
        wait_for(
            database_url, "SELECT count(*) FROM uplinks WHERE device_id = 'SD-1'", lambda n: n == 3
        )

    with psycopg.connect(database_url) as conn:
        reasons = dict(
            conn.execute("SELECT reason, count(*) FROM dead_letters GROUP BY 1").fetchall()
        )
        details = dict(conn.execute("SELECT reason, detail FROM dead_letters").fetchall())
        readings = conn.execute("SELECT count(*) FROM readings WHERE device_id = 'SD-1'").fetchone()
        battery = conn.execute(
            "SELECT battery_pct FROM device_state WHERE device_id = 'SD-1'"
        ).fetchone()
        heads = dict(conn.execute("SELECT reason, head FROM dead_letters").fetchall())
    assert reasons == dict.fromkeys(bad, 1)
    assert "smoke" in details["schema"] and "future" in details["bad_timestamp"]
    assert "intrusion" in details["type_mismatch"] and "camera" in details["type_mismatch"]
    assert readings == (7,)  # 3 messages × smoke and temp_c, and one battery_pct
    assert battery == (80.0,)
    assert heads["bad_id_number"] is None  # no bytes of a card payload are kept
    assert heads["bad_json"] == '{"seq": 4, "ts": '
    assert collected.kinds() == []


def test_redelivered_and_repeated_messages_are_stored_once(
    registry: httpx.Client, database_url: str, mqtt_server: MqttUrl
) -> None:
    bodies = [telemetry(seq) for seq in range(1, 11)]
    with running_consumer(database_url, mqtt_server):
        pub = Publisher(mqtt_server)
        for _ in range(3):
            for body in bodies:
                pub.send(topic("SD-1"), body)
        pub.close()
        wait_for(database_url, "SELECT count(*) FROM dead_letters", lambda n: n == 20)
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM uplinks").fetchone() == (10,)
        assert conn.execute("SELECT count(*) FROM readings").fetchone() == (20,)


def test_a_device_whose_counter_restarts_is_heard(
    registry: httpx.Client, database_url: str, mqtt_server: MqttUrl
) -> None:
    """seq 1-50, a reboot, seq 1 again with a smoke alarm: the alarm opens an incident; a
    broker redelivery of seq 50 (the same bytes) is still stored once."""
    from tests.rules_helpers import running_rules, seed

    seed(database_url)
    start = now_ms() - 60_000
    before = [{"seq": seq, "ts": start + seq * 100, "smoke": 0.05} for seq in range(1, 51)]
    with running_consumer(database_url, mqtt_server), running_rules(database_url):
        pub = Publisher(mqtt_server, in_flight=50)
        for body in before:
            pub.send(topic("SD-1"), body)
        pub.send(topic("SD-1", "status"), {"online": True, "fw": "1.0"}, retain=True)  # reboot
        pub.send(topic("SD-1", "event"), {"seq": 1, "ts": now_ms(), "type": "smoke_alarm",
                                          "smoke": 3.4})  # fmt: skip
        pub.send(topic("SD-1"), before[-1])  # redelivered after the broker restarted
        pub.close()
        wait_for(database_url, "SELECT count(*) FROM incidents WHERE rule_id = 'smoke-alarm'",
                 lambda n: n == 1)  # fmt: skip
        wait_for(database_url, "SELECT count(*) FROM dead_letters", lambda n: n == 1)
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM uplinks WHERE seq = 50").fetchone() == (1,)
        assert conn.execute("SELECT count(*) FROM uplinks WHERE seq = 1").fetchone() == (2,)
        assert conn.execute("SELECT reason FROM dead_letters").fetchone() == ("duplicate",)
        publisher = Publisher(mqtt_server)
        publisher.send(topic("SD-1", "status"), b"", retain=True)
        publisher.close()


def test_events_become_signals(
    registry: httpx.Client, database_url: str, mqtt_server: MqttUrl
) -> None:
    with running_consumer(database_url, mqtt_server) as collected:
        pub = Publisher(mqtt_server)
        for seq, kind in enumerate(["smoke_alarm", "test", "tamper", "alarm_cleared"], start=20):
            pub.send(
                topic("SD-1", "event"), {"seq": seq, "ts": now_ms(), "type": kind, "smoke": 3.1}
            )
        pub.close()
        wait_for(database_url, "SELECT count(*) FROM signals", lambda n: n == 4)
    assert collected.kinds() == ["smoke_alarm", "smoke_test", "tamper", "smoke_alarm_cleared"]
    alarm = collected.signals[0]
    assert (alarm.area, alarm.source_id, alarm.value) == (COMMUNITY, "SD-1", 3.1)


def test_nul_bytes_cost_only_their_own_message(
    registry: httpx.Client, database_url: str, mqtt_server: MqttUrl
) -> None:
    with running_consumer(database_url, mqtt_server):
        pub = Publisher(mqtt_server)
        pub.send(topic("SD-1", "status"), {"online": True, "fw": "1.0\u0000evil"})
        pub.send(topic("SD-1"), telemetry(1))
        pub.close()
        wait_for(database_url, "SELECT count(*) FROM uplinks", lambda n: n == 1)
        wait_for(database_url, "SELECT count(*) FROM dead_letters", lambda n: n == 1)
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT reason FROM dead_letters").fetchone() == ("schema",)


@pytest.mark.slow
def test_zero_loss_across_sigkill(
    registry: httpx.Client, database_url: str, queueing_broker: MqttUrl, tmp_path: Path
) -> None:
    """20,000 QoS 1 messages; the ingest process is SIGKILLed mid-way and restarted."""
    mqtt_server = queueing_broker
    devices = [f"ZL-{i:03d}" for i in range(100)]
    csv = "id,type,area\n" + "".join(f"{d},smoke_sensor,{COMMUNITY}\n" for d in devices)
    imported = registry.post(
        "/api/v1/devices/import", content=csv.encode(), headers={"content-type": "text/csv"}
    )
    assert imported.json()["created"] == 100
    broker_url = f"mqtt://{mqtt_server.host}:{mqtt_server.port}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SB_")},
        "SB_DATABASE_URL": database_url,
        "SB_MQTT_URL": broker_url,
        "SB_INGEST_CLIENT_ID": f"zero-loss-{os.getpid()}",
        "SB_DATA_DIR": str(tmp_path),
        "SB_LOG_LEVEL": "WARNING",
    }

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "shaobing.cli", "ingest", "--metrics-port", "0"], env=env
        )

    total = 20_000
    process = start()
    try:
        # The durable session must exist before the burst: prove it with a first message.
        pub = Publisher(mqtt_server, in_flight=200)
        deadline = time.monotonic() + 60
        while not wait_for(database_url, "SELECT count(*) FROM uplinks", lambda n: True):
            assert time.monotonic() < deadline and process.poll() is None, "ingest never came up"
            pub.send(topic("ZL-000"), {"seq": 0, "ts": now_ms(), "smoke": 0.0})
            time.sleep(0.5)

        published: list[int] = []

        def publish_all() -> None:
            for i in range(total):
                device = devices[i % len(devices)]
                payload = {"seq": 1 + i // len(devices), "ts": now_ms(), "smoke": 0.01}
                info = pub.client.publish(topic(device), json.dumps(payload), qos=1)
                if i % 200 == 199:
                    info.wait_for_publish()  # a bounded window: the broker has acked these
            info.wait_for_publish()
            published.append(total)

        sender = threading.Thread(target=publish_all)
        sender.start()
        wait_for(database_url, "SELECT count(*) FROM uplinks", lambda n: n > 3_000, timeout=60)
        process.send_signal(signal.SIGKILL)
        process.wait()
        killed_at = wait_for(database_url, "SELECT count(*) FROM uplinks", lambda n: True)
        time.sleep(1)
        process = start()
        sender.join(timeout=300)
        # Every message must have reached the broker before the publisher goes away.
        assert published == [total], "the publisher did not finish"
        pub.close()
        wait_for(
            database_url, "SELECT count(*) FROM uplinks", lambda n: n == total + 1, timeout=120
        )
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert killed_at < total + 1, "the kill came too late to prove anything"
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM readings").fetchone() == (total + 1,)
        per_device = conn.execute(
            "SELECT count(*), min(n), max(n) FROM (SELECT device_id, count(*) AS n"
            " FROM readings WHERE device_id LIKE 'ZL-%%' GROUP BY 1) d"
        ).fetchone()
        # Every device got exactly its 200 messages (ZL-000 one more: the probe).
        assert per_device == (100, 200, 201)


@pytest.mark.slow
def test_a_broker_restart_loses_nothing(
    registry: httpx.Client, database_url: str, tmp_path: Path
) -> None:
    """The broker stops while ingest holds messages it has not committed (a table lock
    holds its writes) and more wait in the broker's queue; the held ones commit after the
    broker is gone, so their PUBACKs are never sent. After the restart the broker delivers
    both again from its store, ingest stores each message once, and new traffic flows."""
    broker = LocalMosquitto(tmp_path / "broker")
    url = broker.start()
    first, second = 3000, 1000
    try:
        # At most 1,000 in hand, so that some still wait in the broker's queue for the session
        # when it stops (in one run 2,336 had reached ingest's socket, 664 had not).
        with running_consumer(database_url, url, max_in_hand=1000):
            with psycopg.connect(database_url) as locker:
                locker.execute("LOCK TABLE uplinks IN SHARE ROW EXCLUSIVE MODE")  # no inserts
                pub = Publisher(url, in_flight=500)
                sent = [
                    pub.client.publish(topic("SD-1"), json.dumps(telemetry(seq)), qos=1)
                    for seq in range(1, first + 1)
                ]
                for info in sent:
                    info.wait_for_publish(10)  # the broker has every one of them
                pub.close()
                deadline = time.monotonic() + 10
                while not REGISTRY.get_sample_value("sb_ingest_in_hand"):
                    assert time.monotonic() < deadline, "ingest received nothing"
                    time.sleep(0.05)
                broker.stop()
            # The lock is gone: what ingest held commits now, unacknowledged.
            count = "SELECT count(*) FROM uplinks WHERE device_id = 'SD-1'"
            wait_for(database_url, count, lambda n: n > 0)
            broker.start()
            pub = Publisher(url)
            for seq in range(first + 1, first + second + 1):
                pub.send(topic("SD-1"), telemetry(seq))
            pub.close()
            wait_for(database_url, count, lambda n: n == first + second, timeout=60)
            # The messages committed while the broker was down came again, as duplicates.
            redelivered = "SELECT count(*) FROM dead_letters WHERE reason = 'duplicate'"
            wait_for(database_url, redelivered, lambda n: n > 0)
    finally:
        broker.stop()
    with psycopg.connect(database_url) as conn:
        readings = conn.execute("SELECT count(*) FROM readings WHERE device_id = 'SD-1'")
        assert readings.fetchone() == (2 * (first + second),)  # smoke and temp_c, once each


def test_status_and_last_will_update_device_state(
    registry: httpx.Client, database_url: str, mqtt_server: MqttUrl
) -> None:
    with running_consumer(database_url, mqtt_server):
        pub = Publisher(mqtt_server)
        pub.send(topic("SD-1", "status"), {"online": True, "fw": "1.4.2"})
        wait_for(
            database_url,
            "SELECT fw FROM device_state WHERE device_id = 'SD-1'",
            lambda v: v == "1.4.2",
        )
        pub.send(topic("SD-1", "status"), {"online": False})
        pub.close()
        wait_for(
            database_url,
            "SELECT online FROM device_state WHERE device_id = 'SD-1'",
            lambda v: v is False,
        )
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT offline_since, reported_offline FROM device_state WHERE device_id = 'SD-1'"
        ).fetchone()
    assert row is not None and row[0] > datetime.now(UTC) - timedelta(minutes=1) and row[1] is False


def test_a_dead_receiver_is_replaced(
    registry: httpx.Client, database_url: str, queueing_broker: MqttUrl, tmp_path: Path
) -> None:
    import psutil

    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SB_")},
        "SB_DATABASE_URL": database_url,
        "SB_MQTT_URL": f"mqtt://{queueing_broker.host}:{queueing_broker.port}",
        "SB_INGEST_CLIENT_ID": f"receiver-{os.getpid()}",
        "SB_DATA_DIR": str(tmp_path),
        "SB_LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "shaobing.cli", "ingest", "--metrics-port", "0"], env=env
    )
    try:
        pub = Publisher(queueing_broker)
        deadline = time.monotonic() + 60
        while not wait_for(database_url, "SELECT count(*) FROM uplinks", lambda n: True):
            assert time.monotonic() < deadline, "ingest never came up"
            pub.send(topic("SD-1"), telemetry(1))
            time.sleep(0.5)
        receivers = [
            child
            for child in psutil.Process(process.pid).children()
            if "spawn_main" in " ".join(child.cmdline())
        ]
        assert len(receivers) == 1
        receivers[0].kill()
        for seq in range(2, 52):
            pub.send(topic("SD-1"), telemetry(seq))
        pub.close()
        wait_for(database_url, "SELECT count(*) FROM uplinks", lambda n: n == 51, timeout=30)
        assert process.poll() is None
    finally:
        process.terminate()
        process.wait(timeout=20)
