"""`shaobing simulate` as users run it, into the real consumer, broker and database."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import psycopg
import pytest

from hub.settings import MqttUrl
from tests.ingest_helpers import running_consumer, wait_for
from tests.services import LocalMosquitto
from tests.test_cli import SHAOBING, clean_env

pytestmark = pytest.mark.slow  # the lanes: docs/testing.md

SMOKE, READERS = 8, 3


def test_simulating_into_an_area_its_devices_are_not_in_is_refused(
    clean_registry: None, database_url: str, queueing_broker: MqttUrl, tmp_path: Path
) -> None:
    """The simulated devices exist already, in another community: every message would be
    refused as area_mismatch, so the simulator says so and stops instead of publishing."""
    env = clean_env(SB_DATABASE_URL=database_url, SB_DATA_DIR=str(tmp_path / "var"),
                    SB_MQTT_URL=f"mqtt://{queueing_broker.host}:{queueing_broker.port}")  # fmt: skip
    command = [*SHAOBING, "simulate", "--smoke", "2", "--readers", "1", "--count", "3"]
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "0 new device(s) registered" in again.stderr
    elsewhere = subprocess.run([*command, "--area", "440311001003"], env=env,
                               capture_output=True, text=True, timeout=120)  # fmt: skip
    assert elsewhere.returncode == 1, elsewhere.stderr
    assert "3 of the simulated devices are registered in another area" in elsewhere.stderr
    assert "--area 440311001002" in elsewhere.stderr and "Traceback" not in elsewhere.stderr
    assert "publishing" not in elsewhere.stderr


@pytest.mark.parametrize(
    ("rate", "count"),
    [
        (200, 1200),  # paced, long enough for a progress line (every 5 s)
        (0, 5000),  # as fast as the broker takes them: nothing may be left behind at the end
    ],
    ids=["paced", "unpaced"],
)
def test_simulated_traffic_lands_with_its_alarms_reads_and_dead_letters(
    clean_registry: None,
    database_url: str,
    queueing_broker: MqttUrl,
    tmp_path: Path,
    rate: int,
    count: int,
) -> None:
    env = clean_env(
        SB_DATABASE_URL=database_url,
        SB_MQTT_URL=f"mqtt://{queueing_broker.host}:{queueing_broker.port}",
        SB_DATA_DIR=str(tmp_path / "var"),
    )
    command = [*SHAOBING, "simulate", "--smoke", str(SMOKE)]
    command += ["--readers", str(READERS), "--rate", str(rate), "--count", str(count)]
    command += ["--alarms", "--bad"]
    with running_consumer(database_url, queueing_broker):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert f"simulate: {SMOKE + READERS} new device(s) registered" in done.stderr
        if rate:
            progress = r"simulate: \d+ sent \(\d+/s\), \d+ alarms, \d+ malformed"
            assert re.search(progress, done.stderr), done.stderr
        summary = re.search(
            r"simulate: done, (\d+) sent, (\d+) alarms, (\d+) malformed", done.stderr
        )
        assert summary, done.stderr
        sent, alarms, bad = map(int, summary.groups())
        assert sent == count and bad > 0  # about 2 % malformed: none in 1,200 is p ≈ 3e-11
        # Every well-formed message lands, malformed ones beside them notwithstanding.
        wait_for(
            database_url,
            "SELECT count(*) FROM uplinks WHERE device_id LIKE 'SIM-%'",
            lambda n: n == sent - bad,
        )
        wait_for(
            database_url,
            "SELECT count(*) FROM device_state WHERE device_id LIKE 'SIM-%' AND fw = 'sim-1.0'",
            lambda n: n == SMOKE + READERS,
        )

    with psycopg.connect(database_url) as conn:
        smoke_uplinks, reader_uplinks = conn.execute(
            "SELECT count(*) FILTER (WHERE device_id LIKE 'SIM-SD-%'),"
            " count(*) FILTER (WHERE device_id LIKE 'SIM-RD-%') FROM uplinks"
        ).fetchone() or (0, 0)
        metrics = conn.execute(
            "SELECT metric, count(DISTINCT device_id) FROM readings"
            " WHERE device_id LIKE 'SIM-SD-%' GROUP BY metric ORDER BY metric"
        ).fetchall()
        # Smoke levels that drift: a sensor's level differs from one message to its next. (A
        # count of distinct values capped itself: the levels, at 0.001, span about a hundred.)
        changed = conn.execute(
            "SELECT avg((value <> previous)::int) FROM (SELECT value, lag(value) OVER"
            " (PARTITION BY device_id ORDER BY ts) AS previous FROM readings"
            " WHERE metric = 'smoke') r WHERE previous IS NOT NULL"
        ).fetchone()
        reads = conn.execute("SELECT status, count(*) FROM id_reads GROUP BY status").fetchall()
        signals = dict(
            conn.execute(
                "SELECT kind, count(*) FROM signals WHERE source_id LIKE 'SIM-%' GROUP BY kind"
            ).fetchall()
        )
        dead_letters = conn.execute("SELECT count(*) FROM dead_letters").fetchone()

    assert metrics == [(m, SMOKE) for m in ("battery_pct", "rssi_dbm", "smoke", "temp_c")]
    assert changed is not None and changed[0] >= 0.8, changed
    # Readers send only ID reads, and every simulated card has a valid check digit and date.
    assert reads == [("ok", reader_uplinks)] and reader_uplinks > 0
    assert smoke_uplinks + reader_uplinks == sent - bad
    assert signals.get("smoke_alarm", 0) == alarms
    assert "id_invalid" not in signals and "id_expired" not in signals
    # One of the malformed kinds has a topic outside `sb/+/+/+`, which ingest never receives.
    assert dead_letters is not None and 0 < dead_letters[0] <= bad


def test_the_simulator_rides_out_a_broker_restart(
    clean_registry: None, database_url: str, tmp_path: Path
) -> None:
    """The broker goes away mid-run and comes back: the simulator waits and carries on, and
    everything it counted as sent lands (the broker's store keeps what ingest had not read)."""
    broker = LocalMosquitto(tmp_path / "broker")
    url = broker.start()
    env = clean_env(SB_DATABASE_URL=database_url, SB_MQTT_URL=f"mqtt://{url.host}:{url.port}",
                    SB_DATA_DIR=str(tmp_path / "var"))  # fmt: skip
    command = [*SHAOBING, "simulate", "--smoke", "4", "--readers", "1", "--rate", "300",
               "--duration", "8"]  # fmt: skip
    try:
        with running_consumer(database_url, url):
            process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
            time.sleep(3)
            broker.stop()
            time.sleep(1.5)
            broker.start()
            _, err = process.communicate(timeout=60)
            assert process.returncode == 0, err
            assert "waiting for it" in err
            summary = re.search(r"simulate: done, (\d+) sent", err)
            assert summary, err
            sent = int(summary.group(1))
            wait_for(database_url, "SELECT count(*) FROM uplinks WHERE device_id LIKE 'SIM-%'",
                     lambda n: n == sent, timeout=30)  # fmt: skip
    finally:
        broker.stop()
