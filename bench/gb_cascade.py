"""GB/T 28181 cascade: alarms forwarded per second and incident → upper platform's 200 latency.

    python -m bench.gb_cascade [--uplinks 1] [--latency 200] [--burst 1000]

Runs the GB/T 28181 server as a process of its own on a scratch database (SB_BENCH_DATABASE_URL's
or SB_TEST_DATABASE_URL's server) with `--uplinks` uplinks, each to an upper platform played by
this process on a UDP socket of its own (it answers every request 200 at once and notes when
each alarm arrived). Incidents are opened as the rules engine opens them (each in its own
transaction, which also writes the cascade's outbox row); latency is from each incident's
commit to its alarm's arrival at each upper, at 20 incidents a second; throughput is a burst of
`--burst` incidents committed at once, until every upper has every alarm.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import re
import statistics
import time
from datetime import UTC, datetime
from typing import Any, cast

from bench.ingest import database_server, drop_database, prepare_database
from gb28181.cascade.models import Forward
from gb28181.sip import FloodLimits, Timers
from hub.contracts import Priority
from hub.db import connect
from hub.embedded.ports import free_port
from incidents.models import NewIncident
from incidents.opening import open_or_attach
from incidents.sla import Sla

KEY = b"bench-seal-key-0123456789abcdef!"
HUB_ID = "44031100002000000001"
UPPER_ID = "44030000002000000001"
_SN = re.compile(rb"<CmdType>Alarm</CmdType>\r\n<SN>(\d+)</SN>")


class Upper(asyncio.DatagramProtocol):
    """An upper platform that answers 200 at once and notes each alarm's arrival."""

    def __init__(self) -> None:
        self.arrived: dict[int, float] = {}
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # a datagram endpoint's

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        now = time.perf_counter()
        if not data[:8].isupper() or data.startswith(b"SIP/2.0"):
            return
        found = _SN.search(data)
        if found is not None:
            self.arrived.setdefault(int(found.group(1)), now)
        head = data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
        keep = [h for h in head[1:] if h.split(b":", 1)[0].lower() in
                (b"via", b"from", b"to", b"call-id", b"cseq")]  # fmt: skip
        keep = [h + b";tag=up" if h.lower().startswith(b"to:") else h for h in keep]
        answer = b"SIP/2.0 200 OK\r\n" + b"\r\n".join(keep) + b"\r\nContent-Length: 0\r\n\r\n"
        assert self.transport is not None
        self.transport.sendto(answer, addr)


def _serve(url: str, port: int) -> None:
    from gb28181.server import GbConfig, run_gb28181
    from hub.supervisor import Probe

    config = GbConfig(
        database_url=url, host="127.0.0.1", port=port, hub_id=HUB_ID, realm=HUB_ID[:10],
        timezone="Asia/Shanghai", seal_key=KEY, timers=Timers(t1=0.5),
        flood=FloodLimits(rate_per_s=100_000, burst=100_000),
    )  # fmt: skip
    asyncio.run(run_gb28181(config, Probe("gb28181")))


async def _uplinks(url: str, ports: list[int]) -> None:
    from pydantic import SecretStr

    from gb28181.cascade.models import UplinkIn
    from gb28181.cascade.store import create_uplink

    conn = await connect(url)
    async with conn:
        for n, port in enumerate(ports):
            body = UplinkIn(
                id=f"up{n}", name=f"upper {n}", upper_id=UPPER_ID, upper_domain=UPPER_ID[:10],
                host="127.0.0.1", port=port, password=SecretStr("pw"),
                local_id=f"4403110001200000{n + 1:04d}", area_prefix="440311",
                forward=Forward(), keepalive_s=60,
            )  # fmt: skip
            async with conn.transaction():
                await create_uplink(conn, body, KEY)


async def _open(conn: Any, n: int, *, own_transaction: bool = True) -> tuple[int, float]:
    now = datetime.now(UTC)
    new = NewIncident(
        rule_id="bench", rule_version=1, group_key=f"g{n}", category="fire",
        priority=Priority.EMERGENCY, area="440311", site="bench", building=f"{n}",
        title="bench smoke", first_signal_at=now, last_signal_at=now,
        evidence=[{"kind": "smoke_alarm", "source_id": "SD-1", "ts": now.isoformat()}],
    )  # fmt: skip
    if own_transaction:
        async with conn.transaction():
            incident, _ = await open_or_attach(conn, new, now=now, sla=Sla())
    else:
        incident, _ = await open_or_attach(conn, new, now=now, sla=Sla())
    return incident.id, time.perf_counter()


async def _wait(uppers: list[Upper], ids: list[int], within: float) -> bool:
    deadline = time.perf_counter() + within
    while time.perf_counter() < deadline:
        if all(i in u.arrived for u in uppers for i in ids):
            return True
        await asyncio.sleep(0.005)
    return False


async def bench(url: str, uplinks: int, latency_n: int, burst: int) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    uppers: list[Upper] = []
    ports = []
    for _ in range(uplinks):
        transport, upper = await loop.create_datagram_endpoint(Upper, local_addr=("127.0.0.1", 0))
        uppers.append(upper)
        ports.append(int(transport.get_extra_info("sockname")[1]))
    await _uplinks(url, ports)
    server = mp.get_context("spawn").Process(target=_serve, args=(url, free_port()), daemon=True)
    server.start()
    conn = await connect(url)
    try:
        async with conn:
            warm = [(await _open(conn, -1 - i))[0] for i in range(3)]
            assert await _wait(uppers, warm, 30), "the uplinks never registered"
            sent: dict[int, float] = {}
            for n in range(latency_n):
                incident_id, at = await _open(conn, n)
                sent[incident_id] = at
                await asyncio.sleep(0.05)
            assert await _wait(uppers, list(sent), 30)
            waits = sorted((u.arrived[i] - at) * 1000 for u in uppers for i, at in sent.items())
            # The burst is opened in one transaction: every outbox row appears at its commit,
            # so what is timed is the forwarding alone.
            async with conn.transaction():
                ids = [(await _open(conn, 100_000 + n, own_transaction=False))[0]
                       for n in range(burst)]  # fmt: skip
            start = time.perf_counter()
            assert await _wait(uppers, ids, 120), "not every alarm arrived"
            elapsed = max(u.arrived[i] for u in uppers for i in ids) - start
    finally:
        server.terminate()
        server.join(10)
    return {
        "uplinks": uplinks,
        "latency_ms_p50": round(statistics.median(waits), 1),
        "latency_ms_p99": round(waits[int(len(waits) * 0.99) - 1], 1),
        "burst": burst,
        "alarms_forwarded_per_s": round(burst * uplinks / elapsed),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--uplinks", type=int, default=1)
    parser.add_argument("--latency", type=int, default=200, help="incidents timed one by one")
    parser.add_argument("--burst", type=int, default=1000)
    args = parser.parse_args()
    server = database_server()
    url = prepare_database(server, ["SD-1"])
    try:
        print(asyncio.run(bench(url, args.uplinks, args.latency, args.burst)))
    finally:
        drop_database(server, url)


if __name__ == "__main__":
    main()
