"""GB/T 28181 throughput and alarm latency, with sipp driving 1,000 devices.

    python -m bench.gb28181 [--devices 1000] [--keepalives 50000] [--alarms 5000]
                            [--rate 10000] [--in-flight DEVICES] [--latency-alarms 100]
                            [--background 1000] [--profile FILE]

Runs the GB/T 28181 server and the rules engine as processes of their own on a scratch
database (SB_BENCH_DATABASE_URL's or SB_TEST_DATABASE_URL's server), registers the devices
over the API's registry code, then plays them over UDP from one address (the flood limit per
address is raised for it): every device REGISTERs (401, digest, 200: from Python, as sipp
cannot give each device its own password), then sipp (Debian's sip-tester) sends keepalives,
then alarms, each phase as fast as sipp's `--rate` and `--in-flight` let. Prints the
sustained rate of each, the hub process's CPU per message, sipp's, sipp's retransmissions,
how busy the machine was, and alarm MESSAGE → `incident.created` latency (p50/p99) with
keepalives in the background.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import psycopg

from bench.ingest import database_server, drop_database
from devices.models import AreaIn, DeviceIn, DeviceType
from gb28181.sip import FloodLimits
from hub.db import connect
from hub.events import EVENTS_CHANNEL
from hub.migrations import migrate

AREA = "440311"
HUB_ID = "44031100002000000001"
REALM = HUB_ID[:10]
KEY = b"bench-seal-key-0123456789abcdef!"
SCENARIOS = Path(__file__).parent / "sipp"
SIPP = shutil.which("sipp") or "/usr/bin/sipp"
RULE = {
    "id": "gb-bench", "name": "bench", "match": {"kind": ["intrusion"]},
    "group_by": ["source_id"],
    "incident": {"category": "security", "priority": "major", "title": "bench {source_id}"},
}  # fmt: skip


def device_ids(count: int) -> list[str]:
    return [f"440311000013{n:08d}" for n in range(1, count + 1)]


def prepare(server_url: str, count: int) -> tuple[str, list[tuple[str, str]]]:
    """A scratch database with `count` gb28181 devices and the bench rule; (url, [(id, pw)])."""
    name = f"sb_bench_gb_{int(time.time())}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = server_url.rsplit("/", 1)[0] + f"/{name}"

    async def setup() -> list[tuple[str, str]]:
        from devices.areas import create_area
        from devices.registry import create_devices_bulk
        from rules.model import Rule
        from rules.store import create_rule

        conn = await connect(url)
        async with conn:
            await migrate(conn)
        conn = await connect(url)
        async with conn:
            await create_area(conn, AreaIn(code=AREA, name="bench"))
            rows = [DeviceIn(id=d, type=DeviceType.GB28181, area=AREA,
                             tags={"gb_set_guard": False}) for d in device_ids(count)]  # fmt: skip
            creds = await create_devices_bulk(conn, rows, seal_key=KEY)
            await create_rule(conn, Rule.model_validate(RULE), by="bench")
            await conn.commit()
        return [(c.username, c.password) for c in creds]

    return url, asyncio.run(setup())


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        return int(udp.getsockname()[1])


def gb_process(url: str, port: int, profile: str | None = None) -> None:
    from gb28181.server import GbConfig, run_gb28181
    from hub.supervisor import Probe

    if profile:
        _profile_on_signals(profile)

    flood = FloodLimits(rate_per_s=1_000_000, burst=1_000_000)
    config = GbConfig(database_url=url, host="127.0.0.1", port=port, hub_id=HUB_ID, realm=REALM,
                      timezone="Asia/Shanghai", seal_key=KEY, flood=flood,
                      failure_limit=1_000_000)  # fmt: skip
    asyncio.run(run_gb28181(config, Probe("gb28181")))


def _profile_on_signals(path: str) -> None:
    """cProfile the hub process from SIGUSR1 to SIGUSR2 (the bench sends them around the
    keepalive phase), by its CPU time (wall time would charge a system call with the time
    the process then waited to run again on a busy machine), and write the stats to `path`
    for `python -m pstats`. Slower under the profiler: read shares, not rates."""
    import cProfile
    import signal

    profiler = cProfile.Profile(time.process_time)

    def dump(*_: object) -> None:
        profiler.disable()
        profiler.dump_stats(path)

    signal.signal(signal.SIGUSR1, lambda *_: profiler.enable())
    signal.signal(signal.SIGUSR2, dump)


def rules_process(url: str) -> None:
    from hub.supervisor import Probe
    from rules.consumer import RulesConfig, RulesConsumer

    asyncio.run(RulesConsumer(RulesConfig(database_url=url)).run(Probe("rules")))


@dataclass
class Phase:
    name: str
    messages: int
    seconds: float
    hub_cpu_s: float
    hub_system_s: float
    failed: int
    resent: int  # sipp's retransmissions (Timer E): each one more message for the hub
    peer_cpu_s: float  # sipp's, or the bench's own REGISTER client's
    busy: float  # the machine's CPUs, busy share meanwhile (everything on it, ours or not)

    def line(self) -> str:
        rate = self.messages / self.seconds if self.seconds else 0.0
        n = self.messages or 1
        return (f"{self.name:<11} {self.messages:>7} in {self.seconds:6.2f} s = {rate:8.0f}/s,"
                f" hub CPU {self.hub_cpu_s / n * 1e6:6.0f} µs/message"
                f" ({self.hub_system_s / n * 1e6:.0f} in the kernel),"
                f" peer {self.peer_cpu_s / n * 1e6:.0f} µs, failed {self.failed},"
                f" retransmitted {self.resent}, machine {self.busy:.0%} busy")  # fmt: skip


def sipp(port: int, local_port: int, scenario: str, csv: Path, calls: int, rate: int,
         in_flight: int) -> tuple[float, int, int]:  # fmt: skip
    """Run sipp to the end, at most `in_flight` calls unanswered at a time; (seconds, failed
    calls, retransmissions)."""
    stats = Path(tempfile.mkdtemp()) / "stats.csv"
    args = [SIPP, f"127.0.0.1:{port}", "-sf", str(SCENARIOS / scenario), "-inf", str(csv),
            "-m", str(calls), "-r", str(rate), "-rp", "1000", "-l", str(in_flight), "-t", "u1",
            "-i", "127.0.0.1", "-p", str(local_port), "-key", "hub", HUB_ID, "-key", "realm",
            REALM, "-oocsf", str(SCENARIOS / "hub_requests.xml"), "-nostdin", "-timeout", "300",
            "-trace_stat", "-stf", str(stats), "-fd", "3600", "-trace_err"]  # fmt: skip
    started = time.monotonic()
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=stats.parent)
    seconds = time.monotonic() - started
    failed = _stat(stats, "FailedCall(C)", -1 if done.returncode else 0)
    if failed:
        for log in stats.parent.glob("*_errors.log"):
            print(f"sipp {scenario}: {log.read_text()[:1500]}")
    return seconds, failed, _stat(stats, "Retransmissions(C)", -1)


def _stat(stats: Path, column: str, missing: int) -> int:
    """A cumulative count from sipp's statistics file (its last line)."""
    try:
        lines = stats.read_text().splitlines()
        header, last = lines[0].split(";"), lines[-1].split(";")
        return int(last[header.index(column)])
    except (OSError, ValueError, IndexError):
        return missing


class _Registrar(asyncio.DatagramProtocol):
    """Registers devices over one UDP socket, `window` at a time: REGISTER, 401, the digest
    answer, 200. (sipp cannot take each device's password from its injection file into
    `[authentication]`, so this phase is driven from Python.) The hub's own requests that
    arrive meanwhile are answered 200."""

    def __init__(self, port: int, devices: list[tuple[str, str]], window: int) -> None:
        self.port = port
        self.todo = list(reversed(devices))
        self.window = window
        self.passwords = dict(devices)
        self.done = asyncio.get_running_loop().create_future()
        self.ok = self.failed = self.resent = 0
        self.transport: asyncio.DatagramTransport | None = None
        # device → (request, sent at, its CSeq): an answer to an earlier CSeq (a late 401 to a
        # retransmission) is not an answer to this one.
        self.pending: dict[str, tuple[bytes, float, int]] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a datagram endpoint's
        for _ in range(min(self.window, len(self.todo))):
            self._next()

    def _next(self) -> None:
        if not self.todo:
            if self.ok + self.failed == len(self.passwords) and not self.done.done():
                self.done.set_result(None)
            return
        device, _ = self.todo.pop()
        self._send(device, None, 1)

    def _send(self, device: str, auth: str | None, cseq: int) -> None:
        from gb28181.sip import build_request, serialize
        from gb28181.sip.message import new_branch

        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        headers = [("Contact", f"<sip:{device}@{host}:{port}>"), ("Expires", "3600")]
        if auth:
            headers.append(("Authorization", auth))
        req = build_request("REGISTER", self._uri(), from_=f"<sip:{device}@{REALM}>",
                            to=f"<sip:{device}@{REALM}>", call_id=f"bench-{device}", cseq=cseq,
                            headers=headers)  # fmt: skip
        req.headers.add("Via", f"SIP/2.0/UDP {host}:{port};rport;branch={new_branch()}",
                        first=True)  # fmt: skip
        data = serialize(req)
        self.pending[device] = (data, time.monotonic(), cseq)
        self.transport.sendto(data, ("127.0.0.1", self.port))

    def retransmit(self) -> None:
        """UDP loses datagrams under load: resend what waited half a second (Timer E)."""
        assert self.transport is not None
        now = time.monotonic()
        for device, (data, sent, cseq) in list(self.pending.items()):
            if now - sent > 0.5:
                self.pending[device] = (data, now, cseq)
                self.transport.sendto(data, ("127.0.0.1", self.port))
                self.resent += 1

    def _uri(self) -> str:
        return f"sip:{HUB_ID}@127.0.0.1:{self.port}"

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        from gb28181.sip import SipRequest, authorization_for, parse_message

        message = parse_message(data)
        if isinstance(message, SipRequest):
            self._answer(message, addr)
            return
        device = message.call_id.removeprefix("bench-")
        waiting = self.pending.get(device)
        if waiting is None or message.status < 200 or message.cseq.seq != waiting[2]:
            return  # a late answer to a retransmission
        del self.pending[device]
        if message.status == 401:
            challenge = message.headers.get("WWW-Authenticate") or ""
            auth = authorization_for(challenge, "REGISTER", self._uri(), device,
                                     self.passwords[device])  # fmt: skip
            self._send(device, auth, 2)
            return
        if message.status == 200:
            self.ok += 1
        else:
            self.failed += 1
        self._next()

    def _answer(self, request: Any, addr: tuple[str | Any, int]) -> None:
        assert self.transport is not None
        lines = ["SIP/2.0 200 OK", *(f"Via: {v}" for v in request.headers.get_all("Via")),
                 f"From: {request.headers.get('From')}", f"To: {request.headers.get('To')};tag=b",
                 f"Call-ID: {request.call_id}", f"CSeq: {request.headers.get('CSeq')}",
                 "Content-Length: 0"]  # fmt: skip
        self.transport.sendto(("\r\n".join(lines) + "\r\n\r\n").encode(), addr)


def register_all(port: int, local: int, devices: list[tuple[str, str]]) -> tuple[float, int, int]:
    async def run() -> tuple[float, int, int]:
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        transport, proto = await loop.create_datagram_endpoint(
            lambda: _Registrar(port, devices, window=100), local_addr=("127.0.0.1", local)
        )
        try:
            while not proto.done.done():
                await asyncio.wait([proto.done], timeout=0.25)
                proto.retransmit()
        finally:
            transport.close()
        return time.monotonic() - started, proto.failed, proto.resent

    return asyncio.run(run())


def _wait_listening(port: int, timeout: float = 60) -> None:
    """Until the hub answers an OPTIONS (its process starts, imports, binds)."""
    probe = (
        f"OPTIONS sip:{HUB_ID}@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch="
        "z9hG4bKprobe\r\nFrom: <sip:probe@x>;tag=p\r\nTo: <sip:hub@x>\r\nCall-ID: probe\r\n"
        "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.5)
        while time.monotonic() < deadline:
            sock.sendto(probe, ("127.0.0.1", port))
            try:
                sock.recvfrom(65536)
                return
            except TimeoutError:
                continue
    raise SystemExit("the GB/T 28181 server did not start")


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user + system, system) seconds of a process so far."""
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system, times.system


def peer_seconds() -> float:
    """CPU seconds of the bench process and of its children waited for (sipp runs)."""
    own, children = (resource.getrusage(who) for who in (resource.RUSAGE_SELF,
                                                         resource.RUSAGE_CHILDREN))  # fmt: skip
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def phase(name: str, hub_pid: int, calls: int, run: Any, *, profile: bool = False) -> Phase:
    """Run one phase; with `profile`, the hub's profiler runs through it."""
    if profile:
        os.kill(hub_pid, signal.SIGUSR1)
    cpu, system = cpu_seconds(hub_pid)
    peer, machine = peer_seconds(), machine_seconds()
    seconds, failed, resent = run()
    cpu_after, system_after = cpu_seconds(hub_pid)
    if profile:
        os.kill(hub_pid, signal.SIGUSR2)
    busy, total = (a - b for a, b in zip(machine_seconds(), machine, strict=True))
    return Phase(name, calls, seconds, cpu_after - cpu, system_after - system, failed, resent,
                 peer_seconds() - peer, busy / total if total else 0.0)  # fmt: skip


def machine_seconds() -> tuple[float, float]:
    """(busy, all) CPU seconds of the whole machine so far (a VM's stolen time is not ours)."""
    t = psutil.cpu_times()
    busy = t.user + t.nice + t.system + t.irq + t.softirq
    return busy, busy + t.idle + t.iowait + t.steal


def alarm_latency(url: str, port: int, spares: list[tuple[str, str]]) -> list[float]:
    """Alarm MESSAGE sent → `incident.created` heard, in ms: one alarm at a time, each from a
    device of its own (so each opens an incident of its own)."""
    from tests.gb_helpers import Peer

    peer = Peer(port)
    for device, password in spares:
        if not any(peer.register(device, password) == 200 for _ in range(3)):
            raise SystemExit(f"{device} could not register")
    listen = psycopg.connect(url, autocommit=True)
    listen.execute(f"LISTEN {EVENTS_CHANNEL}")
    found: list[float] = []
    for n, (device, _) in enumerate(spares):
        body = (
            '<?xml version="1.0" encoding="GB2312"?><Notify><CmdType>Alarm</CmdType>'
            f"<SN>{n}</SN><DeviceID>{device}</DeviceID><AlarmPriority>1</AlarmPriority>"
            "<AlarmMethod>5</AlarmMethod><AlarmTime>2026-12-07T10:00:00</AlarmTime>"
            f"<AlarmDescription>bench {n}</AlarmDescription><Info><AlarmType>6</AlarmType>"
            "</Info></Notify>"
        ).encode()
        request = peer.request("MESSAGE", device, body)
        started = time.monotonic()
        peer.ask(request)
        if _incident_created(listen, started + 5):
            found.append((time.monotonic() - started) * 1000)
    peer.close()
    listen.close()
    return found


def _incident_created(conn: psycopg.Connection[Any], deadline: float) -> bool:
    while (left := deadline - time.monotonic()) > 0:
        for note in conn.notifies(timeout=left, stop_after=1):
            if json.loads(note.payload).get("type") == "incident.created":
                return True
    return False


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--keepalives", type=int, default=50_000)
    parser.add_argument("--alarms", type=int, default=5_000)
    parser.add_argument("--rate", type=int, default=10_000, help="sipp calls per second")
    parser.add_argument("--latency-alarms", type=int, default=100)
    parser.add_argument("--background", type=int, default=1000, help="keepalives/s meanwhile")
    parser.add_argument(
        "--in-flight", type=int, default=0,
        help="most sipp calls unanswered at a time (default: one a device, as devices wait for"
        " the answer to their last keepalive or alarm; more makes a backlog that outlasts sipp's"
        " 500 ms retransmission timer, and the hub then answers each request several times)",
    )  # fmt: skip
    parser.add_argument(
        "--profile", help="write the hub's cProfile stats of the keepalive phase here"
    )
    args = parser.parse_args()
    if shutil.which("sipp") is None:
        sys.exit("sipp missing: apt-get install sip-tester")
    server = database_server()
    url, creds = prepare(server, args.devices + args.latency_alarms)
    devices, spares = creds[: args.devices], creds[args.devices :]
    in_flight = args.in_flight or args.devices
    csv = Path(tempfile.mkdtemp()) / "devices.csv"
    csv.write_text("SEQUENTIAL\n" + "".join(f"{d};{p}\n" for d, p in devices))
    port, local = free_port(), free_port()
    ctx = mp.get_context("spawn")
    hub = ctx.Process(target=gb_process, args=(url, port, args.profile), daemon=True)
    rules = ctx.Process(target=rules_process, args=(url,), daemon=True)
    hub.start()
    rules.start()
    try:
        _wait_listening(port)
        assert hub.pid is not None
        phases = [
            phase("REGISTER", hub.pid, len(devices), lambda: register_all(port, local, devices)),
            phase("keepalive", hub.pid, args.keepalives,
                  lambda: sipp(port, local, "keepalive.xml", csv, args.keepalives, args.rate,
                               in_flight), profile=bool(args.profile)),
            phase("alarm", hub.pid, args.alarms,
                  lambda: sipp(port, local, "alarm.xml", csv, args.alarms, args.rate, in_flight)),
        ]  # fmt: skip
        print(f"{len(devices)} devices over UDP from one address, sipp at up to {args.rate}/s,"
              f" {in_flight} calls in flight at most")  # fmt: skip
        for p in phases:
            print(p.line())
        background = subprocess.Popen(
            [SIPP, f"127.0.0.1:{port}", "-sf", str(SCENARIOS / "keepalive.xml"), "-inf",
             str(csv), "-r", str(args.background), "-t", "u1", "-i", "127.0.0.1", "-p",
             str(local), "-key", "hub", HUB_ID, "-key", "realm", REALM, "-oocsf",
             str(SCENARIOS / "hub_requests.xml"), "-nostdin"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            latencies = alarm_latency(url, port, spares)
        finally:
            background.terminate()
            background.wait(10)
        _print_latency(latencies, args.latency_alarms, args.background)
    finally:
        hub.terminate()
        rules.terminate()
        hub.join(5)
        rules.join(5)
        drop_database(server, url)


def _print_latency(latencies: list[float], asked: int, background: int) -> None:
    if len(latencies) < 2:
        print(f"alarm → incident.created: only {len(latencies)} of {asked} seen")
        return
    # Inclusive: with a few dozen alarms, the default (exclusive) method puts p99 past the
    # slowest one seen.
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    print(
        f"alarm → incident.created ({len(latencies)}/{asked}, keepalives {background}/s"
        f" meanwhile): p50 {cuts[49]:.1f} ms, p99 {cuts[98]:.1f} ms, max {max(latencies):.1f} ms"
    )


if __name__ == "__main__":
    main()
