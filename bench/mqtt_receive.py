"""Receive rate of a counting QoS 1 subscriber: stock paho against ingest's BatchingClient.

    python -m bench.mqtt_receive [--messages 200000] [--devices 1000]

Each variant gets its own process and the same pre-encoded burst from bench.ingest's
publisher, against a mosquitto the bench starts. Prints msgs/s and the subscriber's CPU
seconds for: stock paho on MQTT 5 and 3.1.1, and BatchingClient on MQTT 5 with auto-ack and
with manual acks sent in batches (as the ingest receiver does).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import threading
import time
import uuid
from contextlib import ExitStack
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.ingest import publish_all, run_receiver, start_mosquitto
from hub.settings import MqttUrl
from ingest.mqtt_client import BatchingClient

VARIANTS = ("stock-v5", "stock-v311", "batching-v5", "batching-v5-manual-ack")


def counting_subscriber(url: MqttUrl, variant: str, expected: int, ready: Any, out: Any) -> None:
    received = 0
    first = last = 0.0
    done = threading.Event()
    mids: list[int] = []
    manual = variant.endswith("manual-ack")

    def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        nonlocal received, first, last
        last = time.perf_counter()
        first = first or last
        received += 1
        if manual:
            mids.append(msg.mid)
        if received >= expected:
            done.set()

    cls = BatchingClient if variant.startswith("batching") else mqtt.Client
    client = cls(
        CallbackAPIVersion.VERSION2,
        client_id=f"bench-recv-{uuid.uuid4().hex[:6]}",
        protocol=mqtt.MQTTv311 if variant.endswith("v311") else mqtt.MQTTv5,
        manual_ack=manual,
    )
    client.on_message = on_message
    client.on_connect = lambda c, u, f, rc, p: (c.subscribe("sb/+/+/+", qos=1), ready.set())
    client.connect(url.host, url.port)
    client.loop_start()
    while not done.wait(0.02):
        if manual and isinstance(client, BatchingClient):
            batch, mids[:] = mids[:], []
            client.ack_many(batch)
    client.loop_stop()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out.put(
        {
            "rate": received / (last - first),
            "cpu_s": usage.ru_utime + usage.ru_stime,
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--devices", type=int, default=1000)
    args = parser.parse_args()
    mp.set_start_method("spawn")
    devices = [f"BENCH-{i:05d}" for i in range(args.devices)]
    with ExitStack() as stack:
        url = start_mosquitto(stack)
        print(f"bench: {args.messages} QoS 1 msgs per variant, 1 publisher, window 500")
        for variant in VARIANTS:

            def burst() -> None:
                publish_all(url, 1, devices, args.messages, 1, 0, 500)

            result = run_receiver(counting_subscriber, (url, variant, args.messages), burst)
            print(
                f"{variant:24s} {result['rate']:9.0f} msgs/s   subscriber CPU"
                f" {result['cpu_s']:5.1f} s",
                flush=True,
            )


if __name__ == "__main__":
    main()
