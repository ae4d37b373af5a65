"""The SIP stack: UDP and TCP on one host:port, transactions, flood limits, drop counters.

Incoming requests reach the application's handler once per transaction; retransmissions are
answered from the transaction without it. Anything that does not make it to the handler (or is
refused before it) is counted in `SipStack.drops` under a reason from `DROP_REASONS` and
reported to `on_drop`, so the application can export the counts (Prometheus) and a flood of
junk is visible rather than silent. One coroutine per TCP connection and one task per request;
no threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable

from gb28181.sip.message import (
    DEFAULT_LIMITS,
    PARSE_REASONS,
    Limits,
    SipParseError,
    SipRequest,
    SipResponse,
    make_response,
    new_branch,
    new_tag,
    parse_message,
    parse_via,
    serialize,
)
from gb28181.sip.transaction import (
    ClientTransaction,
    ServerTransaction,
    SipTimeout,
    SipTransportError,
    Timers,
    TransactionTable,
    client_key,
    run_client,
    server_key,
)
from gb28181.sip.transport import Address, FloodLimits, RateLimiter, StreamFramer
from hub.logs import get_logger

log = get_logger(__name__)

DROP_REASONS = PARSE_REASONS | frozenset(
    {
        "flood",  # past FloodLimits.rate_per_s from one IP: dropped unparsed
        "too_many_connections",  # TCP connection refused (total or per IP)
        "overloaded",  # too many handler calls or transactions: answered 503
        "method_not_allowed",  # answered 405 (a SIP method this stack is not given) or 501
        "ack",  # an ACK (no INVITE transactions here): ignored
        "stray_response",  # a response matching no client transaction
        "handler_error",  # the handler raised: answered 500
        "no_response",  # the handler returned without a final response: answered 500
        "handler_timeout",  # the handler ran past Timer F: cancelled, answered 500
        "unsendable",  # a response whose connection is gone
    }
)

DEFAULT_METHODS = frozenset({"REGISTER", "MESSAGE", "NOTIFY", "SUBSCRIBE", "OPTIONS", "INFO"})
# Methods RFC 3261 and its extensions define: not allowed here is 405, not known at all is 501.
_KNOWN_METHODS = DEFAULT_METHODS | {"INVITE", "ACK", "BYE", "CANCEL", "PRACK", "UPDATE", "REFER"}
_KNOWN_METHODS |= {"PUBLISH"}

Handler = Callable[["IncomingRequest"], Awaitable[None]]
DropCallback = Callable[[str, Address], None]


class IncomingRequest:
    """A request handed to the application, with the means to answer it.

    `source` is where the packet came from (IP and port as seen, i.e. after NAT), which is where
    responses go, whatever the Via says (RFC 3581 behaviour for every peer: GB devices behind
    NAT often omit rport). Call `respond` once with a final status (>= 200); 1xx before that
    are allowed."""

    def __init__(
        self, stack: SipStack, request: SipRequest, source: Address, tx: ServerTransaction
    ) -> None:
        self.request = request
        self.source = source
        self._stack = stack
        self._tx = tx
        self._to_tag = new_tag()

    @property
    def responded(self) -> bool:
        """True once a final response has been sent."""
        return self._tx.final

    async def respond(
        self,
        status: int,
        reason: str | None = None,
        headers: Iterable[tuple[str, str]] | None = None,
        body: bytes = b"",
    ) -> SipResponse:
        """Sends a response (a To tag is added, the same for every response of this request).
        Raises RuntimeError when a final response was already sent."""
        if self._tx.final:
            raise RuntimeError("this request already has its final response")
        response = make_response(
            self.request, status, reason, headers=list(headers or []), body=body, to_tag=self._to_tag
        )
        if "Server" not in response.headers:
            response.headers.add("Server", self._stack.user_agent)
        self._stack._send_response(self._tx, response)
        return response


class _Connection:
    """One TCP connection, in either direction."""

    def __init__(self, writer: asyncio.StreamWriter, peer: Address) -> None:
        self.writer = writer
        self.peer = peer
        self.closed = False

    def send(self, data: bytes) -> bool:
        if self.closed or self.writer.is_closing():
            return False
        self.writer.write(data)
        return True

    def close(self) -> None:
        self.closed = True
        self.writer.close()


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, stack: SipStack) -> None:
        self.stack = stack

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        host, port = str(addr[0]), int(str(addr[1]))
        self.stack._on_bytes(data, Address("udp", host, port), None)

    def error_received(self, exc: Exception) -> None:
        # An ICMP unreachable from a peer that went away: the transaction's timers deal with it.
        pass


class SipStack:
    """UDP and TCP listeners on `host:port` (port 0: one free port for both), the transaction
    layer, and `request` for the application's own requests.

    `handler` is awaited once per new server transaction, in its own task; `methods` are the
    request methods given to it (others: 405 with Allow, or 501 when the method is not SIP's).
    `advertise_host` is the host written into Via for outgoing requests (default: the bound
    host, or the local address that routes to the destination when bound to a wildcard)."""

    def __init__(
        self,
        host: str,
        port: int,
        handler: Handler,
        *,
        limits: Limits = DEFAULT_LIMITS,
        timers: Timers = Timers(),  # noqa: B008  (frozen)
        flood: FloodLimits = FloodLimits(),  # noqa: B008  (frozen)
        on_drop: DropCallback | None = None,
        methods: frozenset[str] = DEFAULT_METHODS,
        user_agent: str = "Shaobing",
        advertise_host: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.handler = handler
        self.limits = limits
        self.timers = timers
        self.flood = flood
        self.on_drop = on_drop
        self.methods = methods
        self.user_agent = user_agent
        self.advertise_host = advertise_host
        self.drops: Counter[str] = Counter()
        self._rate = RateLimiter(flood.rate_per_s, flood.burst, flood.max_sources)
        self._table = TransactionTable()
        self._udp: asyncio.DatagramTransport | None = None
        self._server: asyncio.Server | None = None
        self._conns: dict[tuple[str, int], _Connection] = {}
        self._conns_per_ip: Counter[str] = Counter()
        self._tasks: set[asyncio.Task[None]] = set()
        self._local_for: dict[str, str] = {}

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Binds UDP, then TCP on the same port (with port 0, retried until both fit)."""
        raise NotImplementedError

    async def stop(self) -> None:
        """Closes the listeners and connections, cancels handlers, fails pending requests."""
        raise NotImplementedError

    @property
    def udp_address(self) -> Address:
        return Address("udp", self.host, self.port)

    @property
    def tcp_address(self) -> Address:
        return Address("tcp", self.host, self.port)

    # --- client side ------------------------------------------------------------------------

    async def request(self, req: SipRequest, dest: Address) -> SipResponse:
        """Sends `req` in a new non-INVITE client transaction and returns the final response.

        Adds the top Via (fresh z9hG4bK branch, rport), Max-Forwards and User-Agent when
        missing. Over UDP Timer E retransmits (T1 doubling to T2); over TCP the connection the
        peer opened to us is reused when still open, else one is opened (SipTransportError when
        that fails). 1xx are skipped. Raises SipTimeout at Timer F (64*T1, 32 s by default)."""
        raise NotImplementedError

    # --- internals (filled in below) ---------------------------------------------------------

    def _drop(self, reason: str, source: Address) -> None:
        self.drops[reason] += 1
        if self.on_drop is not None:
            self.on_drop(reason, source)

    def _on_bytes(self, data: bytes, source: Address, conn: _Connection | None) -> None:
        raise NotImplementedError

    def _send_response(self, tx: ServerTransaction, response: SipResponse) -> None:
        raise NotImplementedError


__all__ = [
    "DROP_REASONS",
    "IncomingRequest",
    "SipStack",
    "SipTimeout",
    "SipTransportError",
    "parse_via",
    "new_branch",
    "client_key",
    "server_key",
    "run_client",
    "ClientTransaction",
    "parse_message",
    "serialize",
    "SipParseError",
    "socket",
    "contextlib",
]
