"""Alarm latency end to end: MQTT publish of a smoke alarm → `incident.created` on the
WebSocket, with background telemetry at a set rate.

    python -m bench.e2e_latency [--topology up|split] [--background 5000] [--alarms 200]
                                [--interval 0.1]

Runs the hub as users do, against SB_BENCH_DATABASE_URL's or SB_TEST_DATABASE_URL's server,
a scratch database and a mosquitto it starts: `shaobing up` (one process), or `shaobing
rules`, `shaobing ingest` and `shaobing api` as three processes (`--topology split`). Publishes
background telemetry from another process with a lean publisher, and prints p50/p95/p99/max
of the alarm latency, the same split at the start of the alarm's ingest transaction, and the
five slowest alarms with when they were sent.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from contextlib import ExitStack
from typing import Any

import psycopg
from websockets.sync.client import connect

from bench.fastpub import FastPublisher, publish_packet
from bench.ingest import (
    AREA,
    database_server,
    drop_database,
    prepare_database,
    publisher,
    start_mosquitto,
)
from bench.latency import quantiles
from hub.embedded.ports import free_port, wait_for_port
from hub.settings import MqttUrl


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--background", type=float, default=5000, help="telemetry msgs/s")
    parser.add_argument("--alarms", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between alarms")
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--topology", choices=("up", "split"), default="up")
    args = parser.parse_args()
    mp.set_start_method("spawn")
    server = database_server()

    with ExitStack() as stack:
        broker = start_mosquitto(stack)
        background = [f"BENCH-{i:05d}" for i in range(args.devices)]
        alarm_devices = [f"ALARM-{i:04d}" for i in range(args.alarms)]
        database_url = prepare_database(
            server, background + alarm_devices, {d: f"B-{d}" for d in alarm_devices}
        )
        stack.callback(drop_database, server, database_url)
        port = free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("SB_")},
            "SB_DATABASE_URL": database_url,
            "SB_MQTT_URL": f"mqtt://{broker.host}:{broker.port}",
            "SB_API_BIND": f"127.0.0.1:{port}",
            "SB_LOG_LEVEL": "WARNING",
            "SB_VISION_WORKERS": "0",  # no cameras here; loading models would only add noise
            "SB_DATA_DIR": stack.enter_context(__import__("tempfile").TemporaryDirectory()),
            "SB_SECRET": "bench-secret",
        }
        token = subprocess.run(
            [sys.executable, "-m", "shaobing.cli", "token", "create", "--role", "viewer"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        roles = [["up"]] if args.topology == "up" else [["rules"], ["ingest"], ["api"]]
        for role in roles:
            http = ["--http-port", str(free_port())] if role[0] in ("rules", "ingest") else []
            hub = subprocess.Popen([sys.executable, "-m", "shaobing.cli", *role, *http], env=env)
            stack.callback(hub.wait, 30)  # callbacks run last-in first-out: signal, then wait
            stack.callback(hub.send_signal, signal.SIGTERM)
        assert wait_for_port("127.0.0.1", port, timeout=60), "hub did not start"
        time.sleep(3)  # ingest subscribes and the rules engine loads

        duration = args.alarms * args.interval + 5
        feeder = mp.Process(
            target=publisher,
            args=(
                broker,
                0,
                background,
                int(args.background * duration),
                args.background,
                500,
                int(time.time() * 1000),
                # 25 messages every 5 ms: a thousand devices reporting on their own clocks
                # arrive spread out, not in large bursts.
                25,
            ),
        )
        feeder.start()
        time.sleep(2)  # let the background load settle
        timings = measure(
            broker,
            f"ws://127.0.0.1:{port}/api/v1/stream?token={token}",
            alarm_devices,
            args.interval,
        )
        feeder.join()
        stored = ingest_started(database_url)

    total = [received - sent for sent, received in timings.values()]
    print(
        f"e2e alarm latency ({args.topology}), {len(total)} alarms of {args.alarms} with"
        f" {args.background:.0f} msgs/s background telemetry: {quantiles(total)}"
    )
    # Where the time went, split at the start of the ingest transaction that stored the alarm
    # (`uplinks.received_at`, the database's clock, which is this machine's).
    split = [(device, *timings[device]) for device in stored if device in timings]
    print(f"  publish → ingest transaction: {quantiles([stored[d] - s for d, s, _ in split])}")
    print(f"  ingest transaction → WebSocket: {quantiles([r - stored[d] for d, _, r in split])}")
    # Slow alarms close together in time point at a stall of the machine or the database
    # (a checkpoint's fsync, say) rather than at the alarm path.
    start = min(sent for sent, _ in timings.values())
    slowest = sorted(timings.values(), key=lambda t: t[0] - t[1])[:5]
    print(
        "  slowest: "
        + ", ".join(f"{1000 * (r - s):.0f} ms at +{s - start:.1f} s" for s, r in slowest)
        + time.strftime("  (first alarm %H:%M:%S)", time.localtime(start))
    )


def ingest_started(database_url: str) -> dict[str, float]:
    """When each alarm's ingest transaction started, by device (epoch seconds)."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT device_id, extract(epoch FROM received_at)::float8 FROM uplinks"
            " WHERE device_id LIKE 'ALARM-%' AND channel = 'event'"
        ).fetchall()
    return {device: started for device, started in rows}


def measure(
    broker: MqttUrl, ws_url: str, devices: list[str], interval: float
) -> dict[str, tuple[float, float]]:
    """Publish one alarm per device; returns device → (published, incident.created seen), in
    epoch seconds."""
    sent: dict[str, float] = {}
    timings: dict[str, tuple[float, float]] = {}
    done = threading.Event()

    def listen() -> None:
        with connect(ws_url) as ws:
            ready.set()
            while not done.is_set():
                try:
                    event: dict[str, Any] = json.loads(ws.recv(timeout=1))
                except TimeoutError:
                    continue
                if event["type"] == "incident.created":
                    device = event["incident"]["building"].removeprefix("B-")
                    if device in sent:
                        timings[device] = (sent[device], time.time())
                        if len(timings) == len(devices):
                            done.set()

    ready = threading.Event()
    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    ready.wait(10)
    pub = FastPublisher(broker.host, broker.port, f"bench-alarm-{uuid.uuid4().hex[:6]}", window=10)
    for i, device in enumerate(devices):
        body = {"seq": 1, "ts": int(time.time() * 1000), "type": "smoke_alarm", "smoke": 3.2}
        packet = publish_packet(f"sb/{AREA}/{device}/event", json.dumps(body).encode(), 1, i + 1)
        sent[device] = time.time()
        pub.publish_many([packet], 1)
        time.sleep(interval)
    done.wait(30)
    done.set()
    pub.close()
    return timings


if __name__ == "__main__":
    main()
