"""Receive rate of a counting QoS 1 subscriber: stock paho against ingest's BatchingClient.

    python -m bench.mqtt_receive [--messages 200000] [--devices 1000] [--tls]
    (pip install zmqtt for the zmqtt variants; they are skipped without it)

Each variant gets its own process and the same pre-encoded burst from bench.ingest's
publisher, against a mosquitto the bench starts. Prints msgs/s and the subscriber's CPU
seconds for: stock paho on MQTT 5 and 3.1.1; BatchingClient on MQTT 5 with on_message and
auto-ack, with on_message and manual acks sent in batches, and with on_delivery and batched
acks (as the ingest receiver does); and zmqtt, an asyncio MQTT client, on MQTT 5 with auto-ack
and with manual acks (`Message.ack()`, as acknowledging after commit needs). With --tls the
subscribers connect over TLS (a self-signed certificate); the publisher stays on the plain
listener.
"""

from __future__ import annotations

import argparse
import importlib.util
import multiprocessing as mp
import resource
import ssl
import threading
import time
import uuid
from contextlib import ExitStack
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.ingest import publish_all, run_receiver, start_mosquitto, start_mosquitto_with_tls
from hub.settings import MqttUrl
from ingest.mqtt_client import BatchingClient

VARIANTS = (
    "stock-v5",
    "stock-v311",
    "batching-v5",
    "batching-v5-manual-ack",
    "batching-v5-delivery-manual-ack",
    "zmqtt-v5",
    "zmqtt-v5-manual-ack",
)


def counting_subscriber(
    url: MqttUrl, cafile: str | None, variant: str, expected: int, ready: Any, out: Any
) -> None:
    received = 0
    first = last = 0.0
    done = threading.Event()
    mids: list[int] = []
    manual = variant.endswith("manual-ack")

    def count(mid: int) -> None:
        nonlocal received, first, last
        last = time.perf_counter()
        first = first or last
        received += 1
        if manual:
            mids.append(mid)
        if received >= expected:
            done.set()

    def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        count(msg.mid)

    def on_delivery(topic: str, payload: bytes, mid: int, qos: int, retain: bool) -> None:
        count(mid)

    cls = BatchingClient if variant.startswith("batching") else mqtt.Client
    client = cls(
        CallbackAPIVersion.VERSION2,
        client_id=f"bench-recv-{uuid.uuid4().hex[:6]}",
        protocol=mqtt.MQTTv311 if variant.endswith("v311") else mqtt.MQTTv5,
        manual_ack=manual,
    )
    if url.tls:
        client.tls_set_context(ssl.create_default_context(cafile=cafile))
    if isinstance(client, BatchingClient) and "delivery" in variant:
        client.on_delivery = on_delivery
    else:
        client.on_message = on_message

    def on_connect(
        client: mqtt.Client, userdata: object, flags: object, reason: object, props: object
    ) -> None:
        client.subscribe("sb/+/+/+", qos=1)
        ready.set()

    client.on_connect = on_connect
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


def zmqtt_subscriber(
    url: MqttUrl, cafile: str | None, variant: str, expected: int, ready: Any, out: Any
) -> None:
    """The same counting subscriber on zmqtt (asyncio); with manual acks each message is
    acknowledged after it is counted, as ingest acknowledges after commit."""
    import asyncio

    import zmqtt

    manual = variant.endswith("manual-ack")

    async def run() -> dict[str, float]:
        tls = ssl.create_default_context(cafile=cafile) if url.tls else None
        client = zmqtt.MQTTClient(url.host, url.port, client_id=f"bench-z-{uuid.uuid4().hex[:6]}",
                                  version="5.0", tls=tls, receive_maximum=8000)  # fmt: skip
        received = 0
        first = last = 0.0
        async with client, client.subscribe("sb/+/+/+", qos=zmqtt.QoS.AT_LEAST_ONCE,
                                            auto_ack=not manual) as messages:  # fmt: skip
            ready.set()
            async for message in messages:
                last = time.perf_counter()
                first = first or last
                received += 1
                if manual:
                    await message.ack()
                if received >= expected:
                    break
        return {"rate": received / (last - first)}

    result = asyncio.run(run())
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out.put({**result, "cpu_s": usage.ru_utime + usage.ru_stime})


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--tls", action="store_true", help="subscribers connect over TLS")
    args = parser.parse_args()
    mp.set_start_method("spawn")
    devices = [f"BENCH-{i:05d}" for i in range(args.devices)]
    with ExitStack() as stack:
        cafile = None
        if args.tls:
            url, receive_url, cert = start_mosquitto_with_tls(stack)
            cafile = str(cert)
        else:
            url = receive_url = start_mosquitto(stack)
        print(
            f"bench: {args.messages} QoS 1 msgs per variant, 1 publisher, window 500"
            + (", subscribers over TLS" if args.tls else "")
        )
        for variant in VARIANTS:

            def burst() -> None:
                publish_all(url, 1, devices, args.messages, 1, 0, 500)

            subscriber = counting_subscriber
            if variant.startswith("zmqtt"):
                if importlib.util.find_spec("zmqtt") is None:
                    print(f"{variant:32s} skipped: pip install zmqtt", flush=True)
                    continue
                subscriber = zmqtt_subscriber
            result = run_receiver(subscriber, (receive_url, cafile, variant, args.messages), burst)
            print(
                f"{variant:32s} {result['rate']:9.0f} msgs/s   subscriber CPU"
                f" {result['cpu_s']:5.1f} s",
                flush=True,
            )


if __name__ == "__main__":
    main()
