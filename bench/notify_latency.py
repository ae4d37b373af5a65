"""Alarm to a person's channel: MQTT publish of a smoke alarm → the first webhook request
received, with background telemetry; then deliveries sustained at a set rate of incidents.

    python -m bench.notify_latency [--background 5000] [--alarms 200] [--interval 0.05]
                                   [--sustained 60] [--per-minute 1000]

Runs `shaobing up` as users do against SB_BENCH_DATABASE_URL's or SB_TEST_DATABASE_URL's
server, a scratch database and a mosquitto it starts, with a webhook channel and a route for
every incident.created pointing at a receiver in this process (it checks the signature). Phase
one publishes `--alarms` alarms, `--interval` apart, beside `--background` msgs/s of telemetry,
and prints p50/p95/p99/max of publish → webhook received. Phase two opens `--per-minute`
incidents a minute for `--sustained` seconds and prints the deliveries per second, their
latency and the largest backlog (notifications not yet delivered).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import psycopg

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

SECRET = "bench-webhook"  # noqa: S105 - a throwaway hub's
ADMIN = "bench-admin-token"


class Arrivals:
    """When each alarm device's incident reached the webhook (epoch seconds)."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.bad = 0
        self.lock = threading.Lock()

    def serve(self) -> tuple[ThreadingHTTPServer, str]:
        arrivals = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                now = time.time()
                expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
                ok = hmac.compare_digest(self.headers.get("X-Shaobing-Signature", ""), expected)
                if ok:
                    device = json.loads(body)["incident"]["building"].removeprefix("B-")
                    with arrivals.lock:
                        arrivals.at.setdefault(device, now)
                else:
                    arrivals.bad += 1
                self.send_response(200 if ok else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server, f"http://127.0.0.1:{server.server_address[1]}/hook"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--background", type=float, default=5000, help="telemetry msgs/s")
    parser.add_argument("--alarms", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between alarms")
    parser.add_argument(
        "--sustained", type=float, default=60, help="seconds of phase two (0: none)"
    )
    parser.add_argument("--per-minute", type=int, default=1000, help="incidents a minute")
    parser.add_argument("--devices", type=int, default=1000)
    args = parser.parse_args()
    mp.set_start_method("spawn")
    server = database_server()
    sustained = int(args.per_minute * args.sustained / 60)

    with ExitStack() as stack:
        broker = start_mosquitto(stack)
        background = [f"BENCH-{i:05d}" for i in range(args.devices)]
        alarms = [f"ALARM-{i:05d}" for i in range(args.alarms)]
        steady = [f"STEADY-{i:05d}" for i in range(sustained)]
        database_url = prepare_database(
            server, background + alarms + steady, {d: f"B-{d}" for d in alarms + steady}
        )
        stack.callback(drop_database, server, database_url)
        arrivals = Arrivals()
        receiver, hook_url = arrivals.serve()
        stack.callback(receiver.shutdown)
        port = _start_hub(stack, database_url, broker)
        _configure(port, hook_url)

        duration = args.alarms * args.interval + args.sustained + 10
        feeder = mp.Process(target=publisher, args=(
            broker, 0, background, int(args.background * duration), args.background, 500,
            int(time.time() * 1000), 25,
        ))  # fmt: skip
        feeder.start()
        time.sleep(2)  # let the background load settle
        sent = _publish(broker, alarms, args.interval)
        _wait_for(arrivals, alarms, 30)
        latency = [arrivals.at[d] - sent[d] for d in alarms if d in arrivals.at]
        print(f"alarm → webhook ({len(latency)} of {args.alarms}, {args.background:.0f} msgs/s"
              f" background telemetry): {quantiles(latency)}")  # fmt: skip
        if sustained:
            _sustained(broker, database_url, arrivals, steady, args)
        feeder.terminate()
        print(f"webhook requests refused (bad signature): {arrivals.bad}")


def _start_hub(stack: ExitStack, database_url: str, broker: MqttUrl) -> int:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SB_")},
        "SB_DATABASE_URL": database_url, "SB_MQTT_URL": f"mqtt://{broker.host}:{broker.port}",
        "SB_API_BIND": f"127.0.0.1:{port}", "SB_LOG_LEVEL": "WARNING", "SB_VISION_WORKERS": "0",
        "SB_DATA_DIR": stack.enter_context(tempfile.TemporaryDirectory()),
        "SB_SECRET": "bench-secret", "SB_ADMIN_TOKEN": ADMIN,
    }  # fmt: skip
    hub = subprocess.Popen([sys.executable, "-m", "shaobing.cli", "up"], env=env)
    stack.callback(hub.wait, 30)
    stack.callback(hub.send_signal, signal.SIGTERM)
    assert wait_for_port("127.0.0.1", port, timeout=60), "hub did not start"
    time.sleep(3)  # ingest subscribes, the rules engine loads
    return port


def _configure(port: int, hook_url: str) -> None:
    api = httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v1",
                       headers={"Authorization": f"Bearer {ADMIN}"})  # fmt: skip
    made = api.post("/channels", json={"id": "bench-hook", "name": "bench", "kind": "webhook",
                                       "area": "", "url": hook_url, "secret": SECRET})  # fmt: skip
    made.raise_for_status()
    routed = api.post("/routes", json={"id": "all", "name": "all", "channels": ["bench-hook"],
                                       "match": {"events": ["incident.created"]}})  # fmt: skip
    routed.raise_for_status()


def _publish(broker: MqttUrl, devices: list[str], interval: float) -> dict[str, float]:
    sent: dict[str, float] = {}
    pub = FastPublisher(broker.host, broker.port, f"bench-alarm-{uuid.uuid4().hex[:6]}", window=10)
    for i, device in enumerate(devices):
        body = {"seq": 1, "ts": int(time.time() * 1000), "type": "smoke_alarm", "smoke": 3.2}
        packet = publish_packet(f"sb/{AREA}/{device}/event", json.dumps(body).encode(), 1, i + 1)
        sent[device] = time.time()
        pub.publish_many([packet], 1)
        time.sleep(interval)
    pub.close()
    return sent


def _sustained(
    broker: MqttUrl, database_url: str, arrivals: Arrivals, devices: list[str], args: Any
) -> None:
    """Incidents at a steady rate; deliveries per second, latency, the largest backlog."""
    backlog = [0]
    stop = threading.Event()

    def watch() -> None:
        with psycopg.connect(database_url, autocommit=True) as conn:
            while not stop.is_set():
                row = conn.execute(
                    "SELECT count(*) FROM notifications WHERE status <> 'delivered'"
                ).fetchone()
                backlog[0] = max(backlog[0], int(row[0]) if row else 0)
                time.sleep(0.5)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    started = time.time()
    sent = _publish(broker, devices, 60 / args.per_minute)
    _wait_for(arrivals, devices, 60)
    stop.set()
    watcher.join()
    done = [arrivals.at[d] for d in devices if d in arrivals.at]
    span = max(done) - started if done else float("nan")
    latency = [arrivals.at[d] - sent[d] for d in devices if d in arrivals.at]
    print(f"sustained {args.per_minute} incidents/min for {args.sustained:.0f} s: {len(done)} of"
          f" {len(devices)} delivered, {len(done) / span:.1f} deliveries/s;"
          f" latency {quantiles(latency)}; largest backlog {backlog[0]}")  # fmt: skip


def _wait_for(arrivals: Arrivals, devices: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with arrivals.lock:
            if all(d in arrivals.at for d in devices):
                return
        time.sleep(0.1)


if __name__ == "__main__":
    main()
