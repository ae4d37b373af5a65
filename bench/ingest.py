"""Ingest throughput: a bare paho subscriber against the whole ingest pipeline, same run.

    python -m bench.ingest [--messages 200000] [--devices 1000] [--publishers 2] [--qos 1]
                           [--soak SECONDS --soak-rate MSGS_PER_S]

Uses SB_BENCH_DATABASE_URL / SB_BENCH_MQTT_URL when set, else SB_TEST_DATABASE_URL's server
(a scratch database) and a mosquitto it starts on a free port. Prints: the bare subscriber's
receive rate, the pipeline's published→committed rate, their ratio, batch latency
p50/p99, the ingest process's peak RSS, CPU per message by process (ingest, its MQTT
receiver, mosquitto, the database backends, the rest of the machine) and the ingest process's
garbage collections (and RSS over time with --soak).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing as mp
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from itertools import pairwise
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psutil
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client import REGISTRY

from bench.cpu import CpuClock, named
from bench.fastpub import FastPublisher, publish_packet
from devices.models import AreaIn, DeviceIn, DeviceType
from hub.db import connect
from hub.gc_tuning import tune_garbage_collector
from hub.migrations import migrate
from hub.settings import MqttUrl
from ingest.consumer import ConsumerConfig, MqttConsumer
from ingest.decode import Message
from ingest.pipeline import Decoded, Pipeline
from ingest.registry_view import RegistryView
from ingest.store import BatchResult, Turn, no_wait

AREA = "440311001002"


# --- the two receivers, each in a process of its own ----------------------------------------


def bare_subscriber(url: MqttUrl, qos: int, expected: int, ready: Any, out: Any) -> None:
    """paho alone: count messages, nothing else (auto-ack)."""
    received = 0
    first = last = 0.0
    done = threading.Event()

    def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        nonlocal received, first, last
        now = time.perf_counter()
        first = first or now
        last = now
        received += 1
        if received >= expected:
            done.set()

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"bench-bare-{uuid.uuid4().hex[:6]}",
        protocol=mqtt.MQTTv5,
    )
    if url.username:
        client.username_pw_set(url.username, url.password)

    def on_connect(
        client: mqtt.Client, userdata: object, flags: object, reason: object, props: object
    ) -> None:
        client.subscribe("sb/+/+/+", qos=qos)
        ready.set()

    client.on_message = on_message
    client.on_connect = on_connect
    client.connect(url.host, url.port)
    client.loop_start()
    done.wait(600)
    client.loop_stop()
    out.put(
        {
            "received": received,
            "seconds": last - first,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
    )


# Seconds without a commit after which a run stops waiting. A load that outruns the pipeline
# for minutes fills mosquitto's queue for the ingest session (`max_queued_messages`), and the
# broker drops what comes after: those messages never arrive.
_STALLED = 30.0


@dataclass(frozen=True)
class Sample:
    """The ingest process during a soak, taken every `rss_every` seconds."""

    seconds: float
    rss_mb: float
    in_hand: int  # the most messages received and not committed since the previous sample
    committed: int


class TimedPipeline(Pipeline):
    """The product pipeline, with each batch's time from decode start to commit recorded."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batches: list[tuple[float, int]] = []
        self.committed = 0
        self.first_received: float | None = None
        self.last_commit = 0.0

    async def decode(self, conn: Any, messages: Sequence[Message]) -> Decoded:
        self.first_received = self.first_received or time.perf_counter()
        return await super().decode(conn, messages)

    async def write(self, conn: Any, batch: Decoded, turn: Turn = no_wait) -> BatchResult:
        result = await super().write(conn, batch, turn)
        self.last_commit = time.perf_counter()
        self.batches.append((self.last_commit - batch.started, batch.size))
        self.committed += result.accepted
        return result


class CollectorClock:
    """Collections and the time they took, per generation, from `gc.callbacks`."""

    def __init__(self) -> None:
        self.count = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self._started = 0.0
        gc.callbacks.append(self._on_collection)

    def _on_collection(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        self.count[info["generation"]] += 1
        self.seconds[info["generation"]] += time.perf_counter() - self._started


def ingest_process(
    url: MqttUrl,
    database_url: str,
    expected: int,
    rss_every: float,
    tuning: dict[str, int],
    ready: Any,
    out: Any,
) -> None:
    pipeline = TimedPipeline(RegistryView(), b"bench-secret")
    config = ConsumerConfig(
        mqtt=url,
        database_url=database_url,
        client_id=f"bench-ingest-{uuid.uuid4().hex[:6]}",
        telemetry_writers=tuning["telemetry_writers"],
        receive_maximum=tuning["receive_maximum"],
        max_batch=tuning["max_batch"],
    )
    consumer = MqttConsumer(config, pipeline)
    samples: list[Sample] = []
    collector = CollectorClock()
    cpu: dict[str, float] = {}

    async def main() -> None:
        tune_garbage_collector()  # as `shaobing ingest` does once started
        task = asyncio.create_task(consumer.run())
        await consumer.connected.wait()
        await asyncio.sleep(0.5)
        clock = CpuClock(await _processes_involved(database_url))
        ready.set()
        started = time.monotonic()
        next_sample = 0.0
        in_hand = 0
        while pipeline.committed < expected:
            await asyncio.sleep(0.05)
            in_hand = max(in_hand, int(REGISTRY.get_sample_value("sb_ingest_in_hand") or 0))
            if pipeline.first_received and not clock.started:
                clock.start()  # the rate's clock starts there too (within 50 ms)
            if rss_every and time.monotonic() - started >= next_sample:
                elapsed = time.monotonic() - started
                samples.append(Sample(elapsed, _rss_mb(), in_hand, pipeline.committed))
                in_hand = 0
                next_sample += rss_every
            if pipeline.last_commit and time.perf_counter() - pipeline.last_commit > _STALLED:
                break  # the rest will not come: the broker dropped it (see `Sample`)
            if task.done():
                task.result()
        cpu.update(clock.stop())
        task.cancel()

    asyncio.run(main())
    latencies = sorted(b[0] for b in pipeline.batches)
    out.put(
        {
            "committed": pipeline.committed,
            "seconds": pipeline.last_commit - (pipeline.first_received or 0),
            "batches": len(latencies),
            "mean_batch": statistics.fmean(b[1] for b in pipeline.batches),
            "p50_ms": 1000 * latencies[len(latencies) // 2],
            "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "gc_count": collector.count,
            "gc_seconds": collector.seconds,
            "samples": samples,
            "cpu": cpu,
        }
    )


async def _processes_involved(database_url: str) -> dict[str, list[int]]:
    """This process, its MQTT receiver, the bench's mosquitto and this database's backends,
    as far as they run on this machine."""
    conn = await connect(database_url)
    async with conn:
        cur = await conn.execute(
            "SELECT pid FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        backends = [row["pid"] for row in await cur.fetchall()]
    return {
        "ingest": [os.getpid()],
        "receiver": [child.pid for child in psutil.Process().children()],
        "mosquitto": named([c.pid for c in psutil.Process(os.getppid()).children()], "mosquitto"),
        "PostgreSQL": named(backends, "postgres"),
    }


def print_cpu(cpu: dict[str, float], messages: int, seconds: float) -> None:
    """CPU per committed message by process, and what the machine's cores did meanwhile."""
    if not cpu or not messages:
        return
    machine = cpu["machine"]
    groups = {name: spent for name, spent in cpu.items() if name != "machine"}
    parts = [f"{name} {spent / messages * 1e6:.1f}" for name, spent in groups.items()]
    other = machine - sum(groups.values())
    cores = os.cpu_count() or 1
    print(
        f"CPU per message (µs):   {', '.join(parts)}, other {other / messages * 1e6:.1f}"
        f" (publishers, system); machine {machine / seconds / cores:.0%} busy of {cores} cores"
    )


def print_soak(soak: dict[str, Any], seconds: float, rate: float, total: int) -> None:
    samples: list[Sample] = soak["samples"]
    print(
        f"soak {seconds:.0f} s at {rate:.0f} msgs/s: committed {soak['committed']} in"
        f" {soak['seconds']:.1f} s ({soak['committed'] / soak['seconds']:.0f} msgs/s),"
        f" batch p99 {soak['p99_ms']:.0f} ms"
    )
    every = ", ".join(f"{s.seconds:.0f}s" for s in samples)
    print(f"  sampled at:             {every}")
    print(f"  RSS, MB:                {', '.join(f'{s.rss_mb:.0f}' for s in samples)}")
    print(f"  most in hand:           {', '.join(str(s.in_hand) for s in samples)}")
    rates = [(b.committed - a.committed) / (b.seconds - a.seconds) for a, b in pairwise(samples)]
    print(f"  committed msgs/s since the sample before: {', '.join(f'{r:.0f}' for r in rates)}")
    warn_if_incomplete(soak["committed"], total)


def warn_if_incomplete(committed: int, sent: int) -> None:
    if committed < sent:
        print(
            f"  {sent - committed} messages never arrived ({_STALLED:.0f} s without a commit):"
            " once the offered load has outrun the pipeline long enough, mosquitto drops what"
            " exceeds its queue for the session ($SYS/broker/load/publish/dropped counts them)"
        )


def _rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


# --- publishers --------------------------------------------------------------------------------


def smoke_telemetry(device: str, seq: int, ts_ms: int) -> tuple[str, bytes]:
    """The message every bench device sends: (topic, payload), four readings."""
    body = {"seq": seq, "ts": ts_ms, "smoke": 0.05, "temp_c": 24.5, "battery_pct": 87,
            "rssi_dbm": -95}  # fmt: skip
    return f"sb/{AREA}/{device}/telemetry", json.dumps(body).encode()


def publisher(
    url: MqttUrl,
    qos: int,
    devices: list[str],
    count: int,
    rate: float,
    window: int,
    start_seq: int,
    chunk: int = 200,
) -> None:
    """Publish `count` smoke telemetry messages round-robin over `devices`, paced in chunks of
    `chunk` when `rate` is set, with at most `window` QoS 1 messages unacknowledged.

    An unpaced burst is encoded before the first message goes out, so that the load generator
    does not take CPU from the receiver under test while it is being measured (on two cores
    that is a fifth of the machine); paced runs encode each chunk as they go.
    """

    def encode(first: int) -> list[bytes]:
        now_ms = int(time.time() * 1000)
        packets = []
        for i in range(first, min(first + chunk, count)):
            topic, payload = smoke_telemetry(
                devices[i % len(devices)], start_seq + i // len(devices), now_ms
            )
            packets.append(publish_packet(topic, payload, qos, i % 65535 + 1))
        return packets

    starts = range(0, count, chunk)
    encoded = None if rate else [encode(first) for first in starts]
    pub = FastPublisher(
        url.host,
        url.port,
        f"bench-pub-{uuid.uuid4().hex[:6]}",
        username=url.username,
        password=url.password,
        window=window,
    )
    started = time.perf_counter()
    for n, first in enumerate(starts):
        pub.publish_many(encoded[n] if encoded else encode(first), qos)
        if rate:
            delay = started + (first + chunk) / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
    if qos:  # at QoS 0 there is no PUBACK to wait for
        pub.drain()
    pub.close()


def publish_all(
    url: MqttUrl,
    qos: int,
    devices: list[str],
    total: int,
    publishers: int,
    rate: float,
    window: int,
) -> None:
    share = len(devices) // publishers
    seq0 = int(time.time() * 1000)  # new seqs each run: nothing is a duplicate
    procs = [
        mp.Process(
            target=publisher,
            args=(
                url,
                qos,
                devices[i * share : (i + 1) * share],
                total // publishers,
                rate / publishers,
                window,
                seq0,
            ),
        )
        for i in range(publishers)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join()


# --- set-up ------------------------------------------------------------------------------------


def database_server() -> str:
    """The PostgreSQL server benches make their scratch databases on."""
    return os.environ.get("SB_BENCH_DATABASE_URL") or os.environ.get(
        "SB_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
    )


def prepare_database(
    server_url: str, devices: list[str], buildings: dict[str, str] | None = None
) -> str:
    name = f"sb_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = server_url.rsplit("/", 1)[0] + f"/{name}"

    async def setup() -> None:
        from devices.areas import create_area
        from devices.registry import create_devices_bulk

        conn = await connect(url)
        async with conn:
            await migrate(conn)
        conn = await connect(url)
        async with conn:
            await create_area(conn, AreaIn(code=AREA, name="bench"))
            await create_devices_bulk(
                conn,
                [
                    DeviceIn(
                        id=d,
                        type=DeviceType.SMOKE_SENSOR,
                        area=AREA,
                        building=(buildings or {}).get(d),
                    )
                    for d in devices
                ],
            )

    asyncio.run(setup())
    return url


def drop_database(server_url: str, database_url: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database_url.rsplit("/", 1)[1]}" WITH (FORCE)')


def start_mosquitto(stack: ExitStack) -> MqttUrl:
    """A mosquitto for the bench on a free port, stopped with `stack`."""
    return _start_mosquitto(stack, tls=False)[0]


def start_mosquitto_with_tls(stack: ExitStack) -> tuple[MqttUrl, MqttUrl, Path]:
    """The same with a second, TLS listener (a self-signed certificate for 127.0.0.1):
    (plain URL, TLS URL, certificate to trust)."""
    plain, secure, cert = _start_mosquitto(stack, tls=True)
    assert secure is not None and cert is not None
    return plain, secure, cert


def _start_mosquitto(stack: ExitStack, *, tls: bool) -> tuple[MqttUrl, MqttUrl | None, Path | None]:
    import getpass
    import shutil
    import subprocess

    from hub.embedded.ports import free_port, wait_for_port

    binary = shutil.which("mosquitto")
    if binary is None:
        sys.exit("bench needs mosquitto on PATH or SB_BENCH_MQTT_URL")
    folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
    port = free_port()
    config = (
        f"per_listener_settings false\nallow_anonymous true\nmax_queued_messages 2000000\n"
        f"max_inflight_messages 1000\nuser {getpass.getuser()}\nlistener {port} 127.0.0.1\n"
    )
    secure, cert = None, None
    if tls:
        openssl = shutil.which("openssl") or sys.exit("--tls needs the openssl program")
        cert, key = folder / "cert.pem", folder / "key.pem"
        subprocess.run(
            [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1"],
            check=True, capture_output=True,
        )  # fmt: skip
        secure_port = free_port()
        config += f"listener {secure_port} 127.0.0.1\ncertfile {cert}\nkeyfile {key}\n"
        secure = MqttUrl("127.0.0.1", secure_port, None, None, tls=True)
    (folder / "m.conf").write_text(config)
    proc = subprocess.Popen([binary, "-c", str(folder / "m.conf")], stderr=subprocess.DEVNULL)
    stack.callback(proc.terminate)
    wait_for_port("127.0.0.1", port, timeout=10)
    if secure:
        wait_for_port("127.0.0.1", secure.port, timeout=10)
    return MqttUrl("127.0.0.1", port, None, None, tls=False), secure, cert


def run_receiver(target: Any, args: tuple[Any, ...], publish: Any) -> dict[str, Any]:
    ready = mp.Event()
    out: Queue[dict[str, Any]] = mp.Queue()
    proc = mp.Process(target=target, args=(*args, ready, out))
    proc.start()
    if not ready.wait(60):
        sys.exit("receiver did not start")
    publish()
    result: dict[str, Any] = out.get(timeout=900)
    proc.join(30)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--publishers", type=int, default=2)
    parser.add_argument("--qos", type=int, default=1, choices=(0, 1))
    parser.add_argument("--window", type=int, default=500, help="messages in flight per publisher")
    parser.add_argument("--bare-only", action="store_true")
    parser.add_argument("--pipeline-only", action="store_true", help="skip the bare subscriber")
    parser.add_argument("--soak", type=float, default=0, help="seconds of paced load for RSS")
    parser.add_argument("--soak-rate", type=float, default=10_000)
    defaults = ConsumerConfig(mqtt=MqttUrl.parse("mqtt://localhost"), database_url="")
    parser.add_argument("--writers", type=int, default=defaults.telemetry_writers)
    parser.add_argument("--receive-maximum", type=int, default=defaults.receive_maximum)
    parser.add_argument("--max-batch", type=int, default=defaults.max_batch)
    args = parser.parse_args()
    tuning = {
        "telemetry_writers": args.writers,
        "receive_maximum": args.receive_maximum,
        "max_batch": args.max_batch,
    }
    mp.set_start_method("spawn")

    with ExitStack() as stack:
        server = database_server()
        url = (
            MqttUrl.parse(os.environ["SB_BENCH_MQTT_URL"])
            if os.environ.get("SB_BENCH_MQTT_URL")
            else start_mosquitto(stack)
        )
        devices = [f"BENCH-{i:05d}" for i in range(args.devices)]
        database_url = prepare_database(server, devices)
        stack.callback(drop_database, server, database_url)
        print(
            f"bench: {args.messages} msgs, {args.devices} devices, {args.publishers} publishers,"
            f" QoS {args.qos}, window {args.window}",
            flush=True,
        )

        def burst() -> None:
            publish_all(url, args.qos, devices, args.messages, args.publishers, 0, args.window)

        bare_rate = float("nan")
        if not args.pipeline_only:
            bare = run_receiver(bare_subscriber, (url, args.qos, args.messages), burst)
            bare_rate = bare["received"] / bare["seconds"]
            print(
                f"bare paho subscriber:   {bare_rate:9.0f} msgs/s  ({bare['received']} in"
                f" {bare['seconds']:.2f} s, peak RSS {bare['peak_rss_mb']:.0f} MB)",
                flush=True,
            )
        if args.bare_only:
            return

        pipe = run_receiver(ingest_process, (url, database_url, args.messages, 0.0, tuning), burst)
        rate = pipe["committed"] / pipe["seconds"]
        print(
            f"ingest pipeline e2e:    {rate:9.0f} msgs/s  ({pipe['committed']} committed in"
            f" {pipe['seconds']:.2f} s, {pipe['batches']} batches of {pipe['mean_batch']:.0f})"
        )
        warn_if_incomplete(pipe["committed"], args.messages)
        if not args.pipeline_only:
            print(f"ratio pipeline / bare:  {rate / bare_rate:9.2f}")
        print(f"batch latency:          p50 {pipe['p50_ms']:.1f} ms   p99 {pipe['p99_ms']:.1f} ms")
        print(f"ingest peak RSS:        {pipe['peak_rss_mb']:.0f} MB")
        print_cpu(pipe["cpu"], pipe["committed"], pipe["seconds"])
        print(
            "ingest GC:              collections by generation"
            f" {'/'.join(map(str, pipe['gc_count']))},"
            f" {sum(pipe['gc_seconds']):.2f} s in all",
            flush=True,
        )

        if args.soak:
            total = int(args.soak * args.soak_rate)

            def paced() -> None:
                publish_all(
                    url, args.qos, devices, total, args.publishers, args.soak_rate, args.window
                )

            soak = run_receiver(ingest_process, (url, database_url, total, 30.0, tuning), paced)
            print_soak(soak, args.soak, args.soak_rate, total)


if __name__ == "__main__":
    main()
