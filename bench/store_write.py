"""The ingest write path alone: where a batch's time goes, in Python and in PostgreSQL.

    python -m bench.store_write [--batches 60] [--size 2000] [--devices 1000] [--runs 3]

Decodes smoke telemetry batches (as bench/ingest.py publishes them), then writes them one
after another on one connection, as a telemetry writer does, and prints per message: decode
time, then for each step of `write_batch` the Python CPU time and the CPU time of the
PostgreSQL backend (so the server must run on this machine), and the WAL
written. No broker is involved. Uses SB_BENCH_DATABASE_URL or SB_TEST_DATABASE_URL's server
(a scratch database).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from bench.cpu import process_seconds
from bench.ingest import database_server, drop_database, prepare_database, smoke_telemetry
from hub.db import connect
from ingest import store
from ingest.decode import Message
from ingest.pipeline import Decoded, Pipeline
from ingest.registry_view import RegistryView

STEPS = ("_deduplicate", "_copy_readings", "state_transitions")
WARM_UP = 5  # batches written before the clock starts


def backend_cpu(pid: int) -> float:
    """CPU seconds of the database backend, which must run on this machine."""
    seconds = process_seconds(pid)
    if seconds is None:
        sys.exit("bench.store_write reads the backend's CPU: run it beside the database server")
    return seconds


def timed(
    step: Callable[..., Awaitable[Any]], name: str, pid: int, spent: defaultdict[str, float]
) -> Callable[..., Awaitable[Any]]:
    async def run(*args: Any, **kwargs: Any) -> Any:
        py, pg = time.process_time(), backend_cpu(pid)
        result = await step(*args, **kwargs)
        spent[f"{name} python"] += time.process_time() - py
        spent[f"{name} postgres"] += backend_cpu(pid) - pg
        return result

    return run


def messages(devices: list[str], batch: int, size: int, seq0: int) -> list[Message]:
    now = datetime.now(UTC)
    out = []
    for n in range(batch * size, (batch + 1) * size):
        device, seq = devices[n % len(devices)], seq0 + n // len(devices)
        topic, payload = smoke_telemetry(device, seq, int(time.time() * 1000))
        out.append(Message(topic, payload, now))
    return out


async def run(database_url: str, devices: list[str], batches: int, size: int) -> None:
    pipeline = Pipeline(RegistryView(), b"bench-secret")
    conn = await connect(database_url)
    async with conn:
        await pipeline.registry.load(conn)
        row = await (await conn.execute("SELECT pg_backend_pid() AS pid")).fetchone()
        assert row is not None
        pid = row["pid"]
        await conn.commit()
        seq0 = int(time.time() * 1000)
        batch_messages = [messages(devices, b, size, seq0) for b in range(batches + WARM_UP)]
        started = time.process_time()
        decoded: list[Decoded] = []
        for batch_of in batch_messages:
            decoded.append(await pipeline.decode(conn, batch_of))
        decode_s = time.process_time() - started
        for batch in decoded[:WARM_UP]:
            await pipeline.write(conn, batch)

        spent: defaultdict[str, float] = defaultdict(float)
        originals = {name: getattr(store, name) for name in STEPS}
        for name, step in originals.items():
            setattr(store, name, timed(step, name, pid, spent))
        try:
            lsn = await (await conn.execute("SELECT pg_current_wal_lsn() AS l")).fetchone() or {}
            await conn.commit()
            py, pg, wall = time.process_time(), backend_cpu(pid), time.perf_counter()
            for batch in decoded[WARM_UP:]:
                await pipeline.write(conn, batch)
            py, pg = time.process_time() - py, backend_cpu(pid) - pg
            wall = time.perf_counter() - wall
            wal = await (
                await conn.execute(
                    "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s) AS d", (lsn["l"],)
                )
            ).fetchone()
            await conn.commit()
        finally:
            for name, step in originals.items():
                setattr(store, name, step)

    n = batches * size
    us = 1e6 / n
    print(
        f"{n} msgs: decode {decode_s / (n + WARM_UP * size) * 1e6:.1f} µs/msg; write"
        f" {n / wall:,.0f} msgs/s on one connection: python {py * us:.1f}, postgres"
        f" {pg * us:.1f} µs/msg, WAL {float(wal['d'] if wal else 0) / n:.0f} bytes/msg"
    )
    print("  " + ", ".join(f"{name} {spent[name] * us:.1f}" for name in sorted(spent)))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--size", type=int, default=2000)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    server = database_server()
    devices = [f"BENCH-{i:05d}" for i in range(args.devices)]
    database_url = prepare_database(server, devices)
    try:
        for _ in range(args.runs):  # the tables grow from run to run, as they do in service
            asyncio.run(run(database_url, devices, args.batches, args.size))
    finally:
        drop_database(server, database_url)


if __name__ == "__main__":
    main()
