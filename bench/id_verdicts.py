"""ID-card verdict latency: an `id_read` published by a reader → its `id_verdict` received on
the reader's `cmd` topic, with background telemetry at a set rate.

    python -m bench.id_verdicts [--background 5000] [--reads 300] [--interval 0.05]

Runs `shaobing ingest` as users do, against SB_BENCH_DATABASE_URL's or SB_TEST_DATABASE_URL's
server (a scratch database) and a mosquitto it starts; the community keeps a register and a
watch list, so every verdict kind is asked for. Prints p50/p95/p99/max and the verdicts by kind.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import queue
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from contextlib import ExitStack
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.ingest import (
    AREA,
    database_server,
    drop_database,
    prepare_database,
    publisher,
    start_mosquitto,
)
from bench.latency import quantiles
from hub.db import connect
from hub.embedded.ports import free_port
from hub.settings import MqttUrl
from simulator.fleet import random_id_number

SECRET = "bench-secret"  # noqa: S105 (a throwaway key for a scratch database)
READERS = [f"READER-{i:03d}" for i in range(20)]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--background", type=float, default=5000, help="telemetry msgs/s")
    parser.add_argument("--reads", type=int, default=300)
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between reads")
    parser.add_argument("--devices", type=int, default=1000)
    args = parser.parse_args()
    mp.set_start_method("spawn")
    server = database_server()
    rng = random.Random(22)
    residents = [random_id_number(rng) for _ in range(200)]
    wanted = [random_id_number(rng) for _ in range(20)]

    with ExitStack() as stack:
        broker = start_mosquitto(stack)
        background = [f"BENCH-{i:05d}" for i in range(args.devices)]
        database_url = prepare_database(server, background)
        stack.callback(drop_database, server, database_url)
        asyncio.run(_prepare(database_url, residents, wanted))
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("SB_")},
            "SB_DATABASE_URL": database_url,
            "SB_MQTT_URL": f"mqtt://{broker.host}:{broker.port}",
            "SB_LOG_LEVEL": "WARNING",
            "SB_DATA_DIR": stack.enter_context(tempfile.TemporaryDirectory()),
            "SB_SECRET": SECRET,
        }
        ingest = subprocess.Popen(
            [sys.executable, "-m", "shaobing.cli", "ingest", "--http-port", str(free_port())],
            env=env,
        )
        stack.callback(ingest.wait, 30)
        stack.callback(ingest.send_signal, signal.SIGTERM)
        time.sleep(4)  # ingest connects and subscribes

        duration = args.reads * args.interval + 5
        feeder = mp.Process(
            target=publisher,
            args=(broker, 0, background, int(args.background * duration), args.background, 500,
                  int(time.time() * 1000), 25),
        )  # fmt: skip
        feeder.start()
        time.sleep(2)  # let the background load settle
        pool = residents + wanted
        cards = [rng.choice([*pool, random_id_number(rng)]) for _ in range(args.reads)]
        latencies, kinds = measure(broker, cards, args.interval)
        feeder.join()

    print(
        f"id verdict latency, {len(latencies)} reads of {args.reads} answered, with"
        f" {args.background:.0f} msgs/s background telemetry: {quantiles(latencies)}"
    )
    print("  verdicts: " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))


async def _prepare(database_url: str, residents: list[str], wanted: list[str]) -> None:
    from devices.models import DeviceIn, DeviceType
    from devices.registry import create_devices_bulk
    from idcard import registers, watchlists

    conn = await connect(database_url)
    async with conn:
        await create_devices_bulk(
            conn, [DeviceIn(id=r, type=DeviceType.ID_READER, area=AREA) for r in READERS]
        )
        await registers.create_register(conn, registers.RegisterIn(area=AREA, name="bench"))
        await registers.add_residents(
            conn, AREA, [(i, registers.ResidentIn(id_number=n)) for i, n in enumerate(residents)],
            secret=SECRET.encode(), scope="",
        )  # fmt: skip
        made = await watchlists.create_watchlist(
            conn, watchlists.WatchlistIn(name="bench", label="bench", level="alert")
        )
        await watchlists.add_entries(
            conn, made.id, watchlists.EntriesIn(id_numbers=wanted), secret=SECRET.encode(),
            scope="",
        )  # fmt: skip
        await conn.commit()


def measure(broker: MqttUrl, cards: list[str], interval: float) -> tuple[list[float], Counter[str]]:
    """Publish one read per card, round the readers; returns the latencies (s) of the
    verdicts received and their kinds."""
    inbox: queue.Queue[tuple[float, dict[str, Any]]] = queue.Queue()
    listener = _client(broker, "bench-readers")
    listener.on_message = lambda c, u, m: inbox.put((time.perf_counter(), json.loads(m.payload)))
    listener.subscribe(f"sb/{AREA}/+/cmd", qos=1)
    time.sleep(0.5)
    phone = _client(broker, "bench-phone")
    sent: dict[int, float] = {}
    for seq, number in enumerate(cards, start=1):
        reader = READERS[seq % len(READERS)]
        body = {"seq": seq, "ts": int(time.time() * 1000), "type": "id_read",
                "operator": "GW-0001", "card": {"id_number": number, "name": "张三"}}  # fmt: skip
        sent[seq] = time.perf_counter()
        phone.publish(f"sb/{AREA}/{reader}/event", json.dumps(body), qos=1)
        time.sleep(interval)
    latencies: list[float] = []
    kinds: Counter[str] = Counter()
    deadline = time.monotonic() + 15
    while len(latencies) < len(cards) and time.monotonic() < deadline:
        try:
            received, verdict = inbox.get(timeout=1)
        except queue.Empty:
            continue
        latencies.append(received - sent[verdict["read_seq"]])
        kinds[verdict["verdict"]] += 1
    for client in (listener, phone):
        client.disconnect()
        client.loop_stop()
    return latencies, kinds


def _client(broker: MqttUrl, name: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{name}-{uuid.uuid4().hex[:6]}")
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client


if __name__ == "__main__":
    main()
