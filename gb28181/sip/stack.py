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
    Via,
    make_response,
    new_branch,
    new_tag,
    parse_message,
    parse_via,
    serialize,
)
from gb28181.sip.quick import QuickMessage, quick_message
from gb28181.sip.transaction import (
    AnsweredTable,
    ClientTransaction,
    ServerTransaction,
    SipTransportError,
    Timers,
    TransactionTable,
    client_key,
    run_client,
    server_key,
)
from gb28181.sip.transport import (
    Address,
    Connection,
    FloodLimits,
    RateLimiter,
    StreamFramer,
    UdpEndpoint,
)
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
        "keepalive",  # a datagram of CRLF only (a UDP keepalive): nothing to answer
    }
)

DEFAULT_METHODS = frozenset({"REGISTER", "MESSAGE", "NOTIFY", "SUBSCRIBE", "OPTIONS", "INFO"})
# Methods RFC 3261 and its extensions define: not allowed here is 405, not known at all is 501.
_KNOWN_METHODS = DEFAULT_METHODS | {"INVITE", "ACK", "BYE", "CANCEL", "PRACK", "UPDATE", "REFER"}
_KNOWN_METHODS |= {"PUBLISH"}

Handler = Callable[["IncomingRequest"], Awaitable[None]]
# The quick path: given a plain MESSAGE (quick.py) and where it came from, True when the
# application took it and it is to be answered 200 at once; False hands it to the full path.
QuickHandler = Callable[[QuickMessage, Address], bool]
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
            self.request,
            status,
            reason,
            headers=list(headers or []),
            body=body,
            to_tag=self._to_tag,
        )
        if "Server" not in response.headers:
            response.headers.add("Server", self._stack.user_agent)
        self._stack._send_response(self._tx, response)
        return response


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
        quick: QuickHandler | None = None,
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
        self.quick = quick
        self.drops: Counter[str] = Counter()
        self.received = 0  # messages read (datagrams, TCP frames), retransmissions included
        self._rate = RateLimiter(flood.rate_per_s, flood.burst, flood.max_sources)
        self._table = TransactionTable()
        self._answered = AnsweredTable()  # the quick path's transactions
        self._udp: UdpEndpoint | None = None
        self._server: asyncio.Server | None = None
        self._conns: dict[tuple[str, int], Connection] = {}
        self._conns_per_ip: Counter[str] = Counter()
        self._tasks: set[asyncio.Task[None]] = set()  # handlers
        self._conn_tasks: set[asyncio.Task[None]] = set()  # TCP connection readers
        self._handlers_running = 0
        self._local_for: dict[str, str] = {}

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Binds UDP, then TCP on the same port (with port 0, retried until both fit)."""
        for _ in range(20):
            udp = UdpEndpoint.open(
                self.host,
                self.port,
                self.flood.udp_rcvbuf,
                lambda data, source: self._on_bytes(data, source, None),
            )
            try:
                self._server = await asyncio.start_server(
                    self._on_tcp_client, self.host, udp.port, reuse_address=True
                )
            except OSError:
                udp.close()
                if self.port:
                    raise
                continue
            self._udp = udp
            self.port = udp.port
            return
        raise OSError(f"no port free for both UDP and TCP on {self.host}")

    async def stop(self) -> None:
        """Closes the listeners and connections, cancels handlers, fails pending requests."""
        if self._server is not None:
            self._server.close()
        if self._udp is not None:
            self._udp.close()
        for conn in list(self._conns.values()):
            conn.close(abort=True)
        for task in list(self._tasks):
            task.cancel()
        for tx in self._table.clients.values():
            if not tx.result.done():
                _fail(tx.result, SipTransportError("stack stopped"))
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        # Connection readers end by themselves once their connection is aborted (cancelling
        # the listener's own tasks would have asyncio log them as errors).
        if self._conn_tasks:
            await asyncio.wait(self._conn_tasks, timeout=2.0)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
        self._server = None
        self._udp = None

    @property
    def udp_address(self) -> Address:
        return Address("udp", self.host, self.port)

    @property
    def tcp_address(self) -> Address:
        return Address("tcp", self.host, self.port)

    @property
    def tcp_connections(self) -> int:
        """Open TCP connections, both directions (a gauge for /metrics)."""
        return len(self._conns)

    @property
    def transactions(self) -> int:
        """Server and client transactions held, Timer J/K included (a gauge for /metrics)."""
        return len(self._table.servers) + len(self._table.clients) + len(self._answered)

    # --- client side ------------------------------------------------------------------------

    async def request(self, req: SipRequest, dest: Address) -> SipResponse:
        """Sends `req` in a new non-INVITE client transaction and returns the final response.

        Sends a copy of `req` with the top Via (fresh z9hG4bK branch, rport), and Max-Forwards
        and User-Agent when missing; `req` itself is left as it was. Over UDP Timer E
        retransmits (T1 doubling to T2); over TCP the connection the peer opened to us is
        reused when still open, else one is opened (SipTransportError when that fails). 1xx
        are skipped. Raises SipTimeout at Timer F (64*T1, 32 s by default)."""
        if self._udp is None:
            raise SipTransportError("stack not started")
        reliable = dest.transport == "tcp"
        conn = await self._connection_to(dest) if reliable else None
        branch = new_branch()
        via_host = self._via_host(dest)
        if ":" in via_host:
            via_host = f"[{via_host}]"
        proto = "TCP" if reliable else "UDP"
        # A copy: the caller may send the same request again (a retry is a new transaction).
        req = SipRequest(req.method, req.uri, req.headers.copy(), req.body)
        req.headers.add(
            "Via", f"SIP/2.0/{proto} {via_host}:{self.port};rport;branch={branch}", first=True
        )
        if "Max-Forwards" not in req.headers:
            req.headers.add("Max-Forwards", "70")
        if "User-Agent" not in req.headers:
            req.headers.add("User-Agent", self.user_agent)
        data = serialize(req)
        key = (branch, req.method)
        loop = asyncio.get_running_loop()
        tx = ClientTransaction(key, dest, loop.create_future())
        self._table.clients[key] = tx

        def send() -> None:
            if conn is not None:
                if not conn.send(data) and not tx.result.done():
                    _fail(tx.result, SipTransportError("connection closed"))
            elif self._udp is not None:
                self._udp.sendto(data, dest.host, dest.port)

        try:
            return await run_client(tx, send, self.timers, reliable)
        finally:
            if not tx.result.done():
                tx.result.cancel()
            self._table.expire_client(key, self.timers.k(reliable))

    async def _connection_to(self, dest: Address) -> Connection:
        conn = self._conns.get((dest.host, dest.port))
        if conn is not None and not conn.closed:
            return conn
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(dest.host, dest.port), self.timers.f
            )
        except (OSError, TimeoutError) as exc:
            raise SipTransportError(f"cannot connect to {dest}: {exc}") from exc
        conn = Connection(writer, dest)
        task = asyncio.ensure_future(self._serve_connection(reader, conn))
        self._conn_tasks.add(task)
        task.add_done_callback(self._conn_tasks.discard)
        return conn

    def _via_host(self, dest: Address) -> str:
        if self.advertise_host:
            return self.advertise_host
        if self.host not in ("0.0.0.0", "::", ""):  # noqa: S104  (comparing, not binding)
            return self.host
        local = self._local_for.get(dest.host)
        if local is None:
            # A connected UDP socket sends nothing; it only asks the kernel for the route.
            family = socket.AF_INET6 if ":" in dest.host else socket.AF_INET
            with socket.socket(family, socket.SOCK_DGRAM) as probe:
                try:
                    probe.connect((dest.host, dest.port))
                    local = str(probe.getsockname()[0])
                except OSError:
                    local = "127.0.0.1"
            if len(self._local_for) > 1024:
                self._local_for.clear()
            self._local_for[dest.host] = local
        return local

    # --- TCP --------------------------------------------------------------------------------

    async def _on_tcp_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        peername = writer.get_extra_info("peername")
        peer = Address("tcp", str(peername[0]), int(peername[1]))
        if (
            len(self._conns) >= self.flood.max_tcp_connections
            or self._conns_per_ip[peer.host] >= self.flood.max_tcp_connections_per_ip
        ):
            self._drop("too_many_connections", peer)
            writer.close()
            return
        task = asyncio.current_task()
        if task is not None:
            self._conn_tasks.add(task)
            task.add_done_callback(self._conn_tasks.discard)
        await self._serve_connection(reader, Connection(writer, peer))

    async def _serve_connection(self, reader: asyncio.StreamReader, conn: Connection) -> None:
        peer = conn.peer
        key = (peer.host, peer.port)
        self._conns[key] = conn
        self._conns_per_ip[peer.host] += 1
        framer = StreamFramer(self.limits)
        try:
            while not conn.closed:
                async with asyncio.timeout(self.flood.tcp_idle_s):
                    data = await reader.read(65536)
                if not data:
                    break
                for message in framer.feed(data):
                    self._on_bytes(message, peer, conn)
                if framer.pongs:
                    conn.send(b"\r\n" * framer.pongs)
                    framer.pongs = 0
        except SipParseError as exc:
            # The stream cannot be framed any more: where the next message starts is unknown.
            self._drop(exc.reason, peer)
        except (TimeoutError, OSError):
            pass
        finally:
            conn.close()
            if self._conns.get(key) is conn:
                del self._conns[key]
            self._conns_per_ip[peer.host] -= 1
            if self._conns_per_ip[peer.host] <= 0:
                del self._conns_per_ip[peer.host]
            for tx in self._table.clients.values():
                if tx.dest == peer and not tx.result.done():
                    _fail(tx.result, SipTransportError("connection closed"))

    def _track(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- incoming messages ------------------------------------------------------------------

    def _drop(self, reason: str, source: Address) -> None:
        self.drops[reason] += 1
        if self.on_drop is not None:
            try:
                self.on_drop(reason, source)
            except Exception:
                log.exception("sip.on_drop_failed", reason=reason)

    def _on_bytes(self, data: bytes, source: Address, conn: Connection | None) -> None:
        self.received += 1
        if not self._rate.allow(source.host):
            self._drop("flood", source)
            return
        if conn is None and data and not data.strip(b"\r\n"):
            # A CRLF keepalive, as some devices (pjsip's default) send over UDP too: nothing to
            # answer, counted apart so that it is seen and not taken for an error.
            self._drop("keepalive", source)
            return
        quick = self.quick
        if (
            quick is not None
            and data.startswith(b"MESSAGE ")
            and self._quick(quick, data, source, conn)
        ):
            return
        try:
            message = parse_message(data, self.limits)
        except SipParseError as exc:
            self._drop(exc.reason, source)
            self._answer_malformed(data, source, conn)
            return
        if isinstance(message, SipResponse):
            self._on_response(message, source)
        else:
            self._on_request(message, source, conn)

    def _quick(
        self, quick: QuickHandler, data: bytes, source: Address, conn: Connection | None
    ) -> bool:
        """The quick path: a plain MESSAGE the application takes is answered 200 here, without
        the full parse, a transaction object or a task; its retransmissions are answered
        again from the answered table. False: the full path is to take it."""
        msg = quick_message(data, self.limits)
        if msg is None:
            return False
        key = msg.server_key()
        digest = self._answered.digest(key)
        if digest not in self._answered:
            if key in self._table.servers:
                return False  # the full path's transaction: its retransmission is its own
            if len(self._answered) >= self.flood.max_quick_transactions:
                return False
            try:
                taken = quick(msg, source)
            except Exception:  # the application's fault: its full path answers (500) and counts
                log.exception("sip.quick_handler_failed")
                taken = False
            if not taken:
                return False
            self._answered.remember(digest, self.timers.j(source.transport == "tcp"))
        tag = digest[:6].hex()
        response = msg.response(200, "OK", (source.host, source.port), tag, self.user_agent)
        self._send_bytes(response, source, conn)
        return True

    def _on_response(self, response: SipResponse, source: Address) -> None:
        tx = self._table.clients.get(client_key(response))
        if tx is None:
            self._drop("stray_response", source)
            return
        if tx.result.done():
            return  # a retransmitted final, absorbed until Timer K
        if response.status < 200:
            tx.proceeding = True
        else:
            tx.result.set_result(response)

    def _on_request(self, request: SipRequest, source: Address, conn: Connection | None) -> None:
        top = _stamp_via(request, source)
        if request.method == "ACK":
            self._drop("ack", source)
            return
        key = server_key(request, top)
        tx = self._table.servers.get(key)
        if tx is not None:
            # A retransmission (RFC 3261 17.2.2): the last response again, no handler call.
            if tx.last_response is not None:
                self._send_bytes(tx.last_response, tx.source, conn)
            return
        tx = ServerTransaction(key, source, conn)
        if request.method not in self.methods:
            self._drop("method_not_allowed", source)
            status = 405 if request.method in _KNOWN_METHODS else 501
            allow = ", ".join(sorted(self.methods))
            self._respond_now(tx, request, status, [("Allow", allow)])
            return
        if (
            self._handlers_running >= self.flood.max_pending_requests
            or len(self._table.servers) >= self.flood.max_transactions
        ):
            self._drop("overloaded", source)
            self._respond_now(tx, request, 503, [("Retry-After", "5")])
            return
        self._table.servers[key] = tx
        self._track(self._run_handler(IncomingRequest(self, request, source, tx)))

    async def _run_handler(self, incoming: IncomingRequest) -> None:
        reason: str | None = None
        self._handlers_running += 1
        try:
            async with asyncio.timeout(self.timers.f):
                await self.handler(incoming)
            if not incoming.responded:
                reason = "no_response"
        except TimeoutError:
            reason = "handler_timeout"
        except asyncio.CancelledError:
            raise
        except Exception:
            reason = "handler_error"
            log.exception("sip.handler_failed", method=incoming.request.method)
        finally:
            self._handlers_running -= 1
        if reason is not None:
            self._drop(reason, incoming.source)
            if not incoming.responded:
                await incoming.respond(500)

    def _respond_now(
        self,
        tx: ServerTransaction,
        request: SipRequest,
        status: int,
        headers: list[tuple[str, str]],
    ) -> None:
        response = make_response(request, status, headers=headers)
        response.headers.add("Server", self.user_agent)
        self._send_response(tx, response)

    def _send_response(self, tx: ServerTransaction, response: SipResponse) -> None:
        data = serialize(response)
        tx.last_response = data
        if response.status >= 200:
            tx.final = True
            reliable = tx.source.transport == "tcp"
            if tx.key in self._table.servers:
                self._table.expire_server(tx.key, self.timers.j(reliable))
        self._send_bytes(data, tx.source, tx.conn)

    def _send_bytes(self, data: bytes, dest: Address, conn: Connection | None) -> None:
        if dest.transport == "udp":
            if self._udp is None or not self._udp.sendto(data, dest.host, dest.port):
                self._drop("unsendable", dest)
            return
        if conn is None or conn.closed:
            conn = self._conns.get((dest.host, dest.port))
        if conn is None or not conn.send(data):
            self._drop("unsendable", dest)

    def _answer_malformed(self, data: bytes, source: Address, conn: Connection | None) -> None:
        """A 400 to a request too broken to parse, when enough of it is readable to address
        one (RFC 3261 8.2: Via, From, To, Call-ID, CSeq copied); otherwise nothing."""
        copied = _salvage_headers(data, self.limits)
        if copied is None:
            return
        lines = ["SIP/2.0 400 Bad Request"]
        lines += [f"{name}: {value}" for name, value in copied]
        lines += [f"Server: {self.user_agent}", "Content-Length: 0"]
        self._send_bytes(("\r\n".join(lines) + "\r\n\r\n").encode(), source, conn)


def _fail(result: asyncio.Future[SipResponse], exc: Exception) -> None:
    """Fails a client transaction; marked as seen, since its caller may be gone already (a
    cancelled request) and asyncio would log the exception as never retrieved."""
    result.set_exception(exc)
    result.exception()


def _stamp_via(request: SipRequest, source: Address) -> Via:
    """Adds received= and rport= to the top Via (RFC 3261 18.2.1, RFC 3581 4); returns it."""
    vias = request.headers.get_all("Via")
    top = parse_via(vias[0])
    changed = False
    if top.host != source.host:
        top.params["received"] = source.host
        changed = True
    if top.rport:
        top.params["rport"] = str(source.port)
        changed = True
    if changed:
        request.headers.replace("Via", [str(top), *vias[1:]])
    return top


_SALVAGE = {"via": "Via", "v": "Via", "from": "From", "f": "From", "to": "To", "t": "To"}
_SALVAGE |= {"call-id": "Call-ID", "i": "Call-ID", "cseq": "CSeq"}


def _salvage_headers(data: bytes, limits: Limits) -> list[tuple[str, str]] | None:
    head = data[: limits.max_head_bytes].split(b"\r\n\r\n", 1)[0]
    lines = head.split(b"\r\n")
    if not lines or lines[0].startswith(b"SIP/") or not lines[0].endswith(b" SIP/2.0"):
        return None  # never answer a response, nor something that is not SIP at all
    out: list[tuple[str, str]] = []
    for raw in lines[1 : limits.max_header_count + 1]:
        name, sep, value = raw.partition(b":")
        canon = _SALVAGE.get(name.strip().lower().decode("latin-1"))
        if not sep or canon is None or len(raw) > limits.max_line_bytes:
            continue
        try:
            text = value.strip().decode("utf-8")
        except UnicodeDecodeError:
            return None
        if not text or any((ord(ch) < 32 and ch != "\t") or ord(ch) == 127 for ch in text):
            return None
        out.append((canon, text))
    names = {name for name, _ in out}
    if names != {"Via", "From", "To", "Call-ID", "CSeq"}:
        return None
    return out
