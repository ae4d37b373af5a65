"""The SIP core alone under SIPp: requests per second answered and CPU per request.

    python -m bench.sip_core --rate 1000 --calls 20000 --transport udp

SIPp plays `tests/sipp/core_options_message.xml` (an OPTIONS and a keepalive MESSAGE per call,
each its own transaction) at `--rate` calls per second against a SipStack whose handler
answers 200 at once; the figures are this process's CPU (parse, transaction, answer, the
sendto), not SIPp's. SIPp retransmits what is not answered within 500 ms, so a rate past what
the machine sustains shows as messages_in well above 2 * calls. What the application adds
per message (XML, database) comes on top: bench/gb28181.py.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from pathlib import Path

from gb28181.sip import FloodLimits, IncomingRequest, SipStack

SCENARIO = Path(__file__).resolve().parent.parent / "tests" / "sipp" / "core_options_message.xml"


async def run(rate: int, calls: int, transport: str) -> dict[str, float]:
    handled = 0

    async def answer(incoming: IncomingRequest) -> None:
        nonlocal handled
        handled += 1
        await incoming.respond(200)

    flood = FloodLimits(rate_per_s=1e9, burst=10**9)  # SIPp sends everything from one address
    stack = SipStack("127.0.0.1", 0, answer, flood=flood)
    await stack.start()
    sipp = shutil.which("sipp") or "/usr/bin/sipp"
    mode = {"udp": "u1", "tcp": "t1"}[transport]
    with tempfile.TemporaryDirectory() as tmp:
        cpu0, wall0 = time.process_time(), time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            sipp, "-sf", str(SCENARIO), "-t", mode, "-i", "127.0.0.1", "-r", str(rate),
            "-m", str(calls), "-l", str(max(rate, 1000)), "-nostdin", "-timeout", "300s",
            f"127.0.0.1:{stack.port}", cwd=tmp,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        await proc.wait()
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    await stack.stop()
    return {
        "sipp_rc": float(proc.returncode or 0),
        "requests": float(handled),
        "wall_s": wall,
        "requests_per_s": handled / wall,
        "messages_in": float(stack.received),  # SIPp's retransmissions included
        "cpu_us_per_message": cpu / max(stack.received, 1) * 1e6,
        "drops": float(sum(stack.drops.values())),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=1000, help="SIPp calls per second")
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--transport", choices=["udp", "tcp"], default="udp")
    args = parser.parse_args()
    result = asyncio.run(run(args.rate, args.calls, args.transport))
    for key, value in result.items():
        print(f"{key:>20}: {value:,.1f}")


if __name__ == "__main__":
    main()
