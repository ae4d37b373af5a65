"""Transport pieces: addresses, per-source flood limits, and Content-Length framing on streams."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from gb28181.sip.message import DEFAULT_LIMITS, Limits, SipParseError, parse_content_length

Transport = Literal["udp", "tcp"]


@dataclass(frozen=True)
class Address:
    """Where a message came from or goes to: transport, IP (or host name), port."""

    transport: Transport
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}:{host}:{self.port}"


@dataclass(frozen=True)
class FloodLimits:
    """Per-source-IP limits. Messages past the rate are dropped (counted "flood") before they
    are parsed, so a flood from one address costs little and does not slow the others.

    The defaults suit one device or a lower platform per address; a test or bench driving
    thousands of simulated devices from one IP raises `rate_per_s` and `burst`."""

    rate_per_s: float = 200.0  # sustained messages per second from one IP
    burst: int = 400  # bucket size
    max_sources: int = 65536  # IPs tracked; the least recently seen is forgotten past this
    max_tcp_connections: int = 4096  # in all
    max_tcp_connections_per_ip: int = 32
    tcp_idle_s: float = 900.0  # a connection silent this long is closed (keepalives are 60 s)
    max_pending_requests: int = 2048  # handler calls in flight; past this new requests get 503
    max_transactions: int = 65536  # server transactions held (Timer J), past this 503
    # Held by the quick path, a 16-byte hash each (about 100 bytes with the table: 25 MiB at
    # this limit; 5,000 keepalives/s for Timer J's 32 s is 160,000); past it, plain MESSAGEs
    # take the full path and its limit.
    max_quick_transactions: int = 262_144
    udp_rcvbuf: int = 4 << 20  # SO_RCVBUF asked for (the kernel caps it at net.core.rmem_max)


class RateLimiter:
    """Token buckets per source IP in a bounded LRU table."""

    def __init__(self, rate_per_s: float, burst: int, max_sources: int) -> None:
        self.rate = rate_per_s
        self.burst = float(burst)
        self.max_sources = max_sources
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def allow(self, ip: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.pop(ip, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        ok = tokens >= 1.0
        if ok:
            tokens -= 1.0
        self._buckets[ip] = (tokens, now)
        if len(self._buckets) > self.max_sources:
            self._buckets.popitem(last=False)
        return ok


class StreamFramer:
    """Cuts a byte stream into SIP messages by Content-Length (RFC 3261 18.3).

    `feed` returns the whole messages now available; raises SipParseError when the stream
    cannot be framed (a head past the limits, Content-Length missing, malformed or too large):
    the caller then closes the connection, since where the next message starts is unknown.
    CRLF keepalives between messages (RFC 5626 3.5.1) are skipped; `pongs` counts the double
    CRLF pings, each of which the caller answers with a single CRLF."""

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self._buf = bytearray()
        self.pongs = 0

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        out: list[bytes] = []
        while True:
            self._skip_keepalives()
            message = self._next()
            if message is None:
                return out
            out.append(message)

    def _skip_keepalives(self) -> None:
        start = 0
        while self._buf.startswith(b"\r\n", start):
            if self._buf.startswith(b"\r\n\r\n", start):
                self.pongs += 1
                start += 4
            else:
                start += 2
        if start:
            del self._buf[:start]

    def _next(self) -> bytes | None:
        limits = self.limits
        end = self._buf.find(b"\r\n\r\n", 0, limits.max_head_bytes + 4)
        if end < 0:
            if len(self._buf) > limits.max_head_bytes:
                raise SipParseError("headers_too_large")
            return None
        length = self._content_length(bytes(self._buf[:end]))
        if length > limits.max_body_bytes or end + 4 + length > limits.max_message_bytes:
            raise SipParseError("body_too_large")
        total = end + 4 + length
        if len(self._buf) < total:
            return None
        message = bytes(self._buf[:total])
        del self._buf[:total]
        return message

    @staticmethod
    def _content_length(head: bytes) -> int:
        found: int | None = None
        for line in head.split(b"\r\n")[1:]:
            name, sep, value = line.partition(b":")
            if not sep or name.strip().lower() not in (b"content-length", b"l"):
                continue
            try:
                text = value.strip().decode("ascii")
            except UnicodeDecodeError:
                raise SipParseError("bad_content_length") from None
            length = parse_content_length(text)
            if found is not None and found != length:
                raise SipParseError("bad_content_length", "differing values")
            found = length
        if found is None:
            raise SipParseError("bad_content_length", "missing on a stream")
        return found


class Connection:
    """One TCP connection, in either direction."""

    # A peer that sends but does not read (its window shut) would have our answers pile up in
    # memory; past this much unsent, the connection is closed.
    MAX_UNSENT = 1 << 20

    def __init__(self, writer: asyncio.StreamWriter, peer: Address) -> None:
        self.writer = writer
        self.peer = peer
        self.closed = False

    def send(self, data: bytes) -> bool:
        if self.closed or self.writer.is_closing():
            return False
        if self.writer.transport.get_write_buffer_size() + len(data) > self.MAX_UNSENT:
            self.close(abort=True)
            return False
        self.writer.write(data)
        return True

    def close(self, *, abort: bool = False) -> None:
        """Closes after what is queued has been sent, or at once (`abort`)."""
        self.closed = True
        if abort:
            self.writer.transport.abort()
        else:
            self.writer.close()


class UdpEndpoint:
    """A non-blocking UDP socket read in batches straight from the event loop's selector.

    asyncio's datagram transport reads one datagram per turn of the loop; draining up to
    `batch` per wake-up lets the stack drop a flood (by its token bucket) about as fast as it
    arrives, instead of leaving the kernel buffer to overflow and lose everyone's datagrams."""

    def __init__(
        self, sock: socket.socket, on_datagram: Callable[[bytes, Address], None], batch: int = 64
    ) -> None:
        self.sock = sock
        self.on_datagram = on_datagram
        self.batch = batch
        self.port = int(sock.getsockname()[1])
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._ready)

    @classmethod
    def open(
        cls, host: str, port: int, rcvbuf: int, on_datagram: Callable[[bytes, Address], None]
    ) -> UdpEndpoint:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            with contextlib.suppress(OSError):  # the kernel caps it at net.core.rmem_max
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.bind(addr)
            return cls(sock, on_datagram)
        except BaseException:
            sock.close()
            raise

    def _ready(self) -> None:
        for _ in range(self.batch):
            try:
                data, addr = self.sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue  # an ICMP error queued on the socket (port unreachable): next one
            self.on_datagram(data, Address("udp", str(addr[0]), int(addr[1])))

    def sendto(self, data: bytes, host: str, port: int) -> bool:
        """False when the datagram could not be sent (kernel buffer full, no route)."""
        try:
            self.sock.sendto(data, (host, port))
        except OSError:
            return False
        return True

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            self._loop.remove_reader(self.sock.fileno())
            self.sock.close()
