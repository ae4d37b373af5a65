"""Raw SIP peers over real loopback sockets, for the SIP core's tests: they send bytes exactly
as given and record what arrives (with arrival times), so retransmissions can be timed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import cast

from gb28181.manscdp import BodyError, quick_keepalive, read_manscdp
from gb28181.sip import FloodLimits, IncomingRequest, SipStack, Timers
from gb28181.sip.message import (
    DEFAULT_LIMITS,
    Limits,
    SipParseError,
    SipRequest,
    SipResponse,
    make_response,
    parse_message,
    serialize,
)
from gb28181.sip.quick import QuickMessage, quick_message
from gb28181.sip.stack import DEFAULT_METHODS, QuickHandler, _stamp_via
from gb28181.sip.transaction import server_key
from gb28181.sip.transport import Address, StreamFramer

FAST = Timers(t1=0.05, t2=0.2, t4=0.25)


@dataclass
class Arrival:
    at: float
    data: bytes
    addr: tuple[str, int]

    @property
    def message(self) -> SipRequest | SipResponse:
        return parse_message(self.data)


class UdpPeer(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.arrivals: asyncio.Queue[Arrival] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        self.port = transport.get_extra_info("sockname")[1]

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        self.arrivals.put_nowait(Arrival(time.monotonic(), data, (str(addr[0]), int(str(addr[1])))))

    def send(self, data: bytes, port: int, host: str = "127.0.0.1") -> None:
        assert self.transport is not None
        self.transport.sendto(data, (host, port))

    async def next(self, wait_s: float = 5.0) -> Arrival:
        return await asyncio.wait_for(self.arrivals.get(), wait_s)

    async def request(self, data: bytes, port: int, *, give_up_s: float = 16.0) -> Arrival:
        """Send a request and retransmit it as a UA over UDP does (Timer A: 0.5 s, doubling)
        until the first answer: a datagram the kernel dropped is sent again, not a failure."""
        interval, waited = 0.5, 0.0
        while True:
            self.send(data, port)
            try:
                return await self.next(interval)
            except TimeoutError:
                waited += interval
                if waited >= give_up_s:
                    raise
                interval = min(interval * 2, 4.0)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


@asynccontextmanager
async def udp_peer(host: str = "127.0.0.1") -> AsyncIterator[UdpPeer]:
    loop = asyncio.get_running_loop()
    _, peer = await loop.create_datagram_endpoint(UdpPeer, local_addr=(host, 0))
    try:
        yield peer
    finally:
        peer.close()


class TcpPeer:
    """A raw TCP connection with a framer on its read side."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.framer = StreamFramer()
        self.pending: list[bytes] = []
        sock = writer.get_extra_info("sockname")
        self.host, self.port = str(sock[0]), int(sock[1])

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def next(self, wait_s: float = 5.0) -> bytes:
        async with asyncio.timeout(wait_s):
            while not self.pending:
                data = await self.reader.read(65536)
                if not data:
                    raise EOFError
                self.pending += self.framer.feed(data)
        return self.pending.pop(0)

    async def closed_by_peer(self, wait_s: float = 5.0) -> bool:
        async with asyncio.timeout(wait_s):
            while True:
                try:
                    data = await self.reader.read(65536)
                except ConnectionError:
                    return True
                if not data:
                    return True

    def close(self) -> None:
        self.writer.close()


@asynccontextmanager
async def tcp_peer(port: int, host: str = "127.0.0.1") -> AsyncIterator[TcpPeer]:
    reader, writer = await asyncio.open_connection(host, port)
    peer = TcpPeer(reader, writer)
    try:
        yield peer
    finally:
        peer.close()


Answer = Callable[[IncomingRequest], Awaitable[None]]


async def answer_200(incoming: IncomingRequest) -> None:
    await incoming.respond(200)


@asynccontextmanager
async def running_stack(
    handler: Answer = answer_200,
    *,
    timers: Timers = FAST,
    flood: FloodLimits | None = None,
    methods: frozenset[str] | None = None,
    host: str = "127.0.0.1",
    limits: Limits = DEFAULT_LIMITS,
    quick: QuickHandler | None = None,
) -> AsyncIterator[SipStack]:
    stack = SipStack(
        host,
        0,
        handler,
        timers=timers,
        flood=flood or FloodLimits(),
        limits=limits,
        methods=methods or DEFAULT_METHODS,
        quick=quick,
    )
    await stack.start()
    try:
        yield stack
    finally:
        await stack.stop()


def request_bytes(
    method: str = "MESSAGE",
    *,
    branch: str = "z9hG4bKaaa",
    call_id: str = "c1@127.0.0.1",
    cseq: int = 1,
    body: bytes = b"",
    transport: str = "UDP",
    port: int = 5060,
    extra: str = "",
) -> bytes:
    head = (
        f"{method} sip:34020000002000000001@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} 127.0.0.1:{port};rport;branch={branch}\r\n"
        "From: <sip:34020000001320000001@3402000000>;tag=f1\r\n"
        "To: <sip:34020000002000000001@3402000000>\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} {method}\r\n"
        "Max-Forwards: 70\r\n"
        f"{extra}"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def response_to(data: bytes, status: int = 200) -> bytes:
    from gb28181.sip.message import make_response

    request = parse_message(data)
    assert isinstance(request, SipRequest)
    return serialize(make_response(request, status))


async def until(predicate: Callable[[], bool], wait_s: float = 5.0) -> None:
    """Polls `predicate` until it holds; fails at the deadline."""
    deadline = time.monotonic() + wait_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(0.01)


def quick_agrees(
    data: bytes, limits: Limits = DEFAULT_LIMITS, source: Address | None = None
) -> QuickMessage | None:
    """The quick path's reading of `data`, checked against the full parser's: whatever the
    quick path accepts, the full parser accepts and reads the same way (request line, Call-ID,
    CSeq, the users of From and To, the body, the transaction key), and the 200 it builds is
    byte for byte the one the stack builds from the full parse. Raises AssertionError when
    they disagree; never anything else."""
    quick = quick_message(data, limits)
    if quick is None:
        return None
    try:
        full = parse_message(data, limits)
    except SipParseError as exc:
        raise AssertionError(f"quick path accepted what the full parser refuses: {exc}") from exc
    assert isinstance(full, SipRequest) and full.method == "MESSAGE"
    assert quick.uri == full.uri and quick.call_id == full.call_id
    assert quick.cseq == full.cseq.seq and quick.body == full.body
    assert quick.from_user == full.from_.uri.user and quick.to_user == full.to.uri.user
    source = source or Address("udp", "192.0.2.7", 5071)
    top = _stamp_via(full, source)  # as the stack does before answering
    assert quick.server_key() == server_key(full, top)
    expected = make_response(full, 200, "OK", to_tag="0a1b2c3d4e5f")
    expected.headers.add("Server", "Shaobing")
    built = quick.response(200, "OK", (source.host, source.port), "0a1b2c3d4e5f", "Shaobing")
    assert built == serialize(expected), (built, serialize(expected))
    return quick


def quick_keepalive_agrees(body: bytes) -> tuple[str, str] | None:
    """`quick_keepalive`'s reading of a body, checked against `read_manscdp`'s: a Notify
    Keepalive with the same SN and DeviceID. Raises AssertionError when they disagree."""
    quick = quick_keepalive(body)
    if quick is None:
        return None
    try:
        msg = read_manscdp(body)
    except BodyError as exc:
        raise AssertionError(f"quick path accepted a body read_manscdp refuses: {exc}") from exc
    assert (msg.root, msg.cmd_type, msg.sn, msg.device_id) == ("Notify", "Keepalive", *quick)
    return quick
