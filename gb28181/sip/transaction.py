"""RFC 3261 non-INVITE transactions (17.1.2 client, 17.2.2 server) and their timers.

Transactions are matched by the top Via's branch, sent-by and method (17.2.3), never by
Call-ID alone: a device that reuses a Call-ID with a new branch starts a new transaction (and
so does one that reuses a branch with another Call-ID or CSeq number). A request
without the RFC 3261 magic cookie (an RFC 2543 peer) is matched by Request-URI, tags, Call-ID,
CSeq and top Via instead.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from gb28181.sip.message import BRANCH_COOKIE, SipRequest, SipResponse, Via, parse_via
from gb28181.sip.transport import Address, Connection


class SipTimeout(Exception):
    """No final response before Timer F (64*T1) fired."""


class SipTransportError(Exception):
    """The request could not be sent (TCP connect refused, stack stopped...)."""


@dataclass(frozen=True)
class Timers:
    """T1 (RTT estimate), T2 (longest retransmit interval), T4 (how long a message may live in
    the network). Tests shrink them; the defaults are RFC 3261's."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0

    @property
    def f(self) -> float:
        """Timer F: a client transaction's whole life."""
        return 64 * self.t1

    def j(self, reliable: bool) -> float:
        """Timer J: how long a server transaction answers retransmissions after its final."""
        return 0.0 if reliable else 64 * self.t1

    def k(self, reliable: bool) -> float:
        """Timer K: how long a client transaction absorbs retransmitted responses."""
        return 0.0 if reliable else self.t4


ServerKey = tuple[str, ...]
ClientKey = tuple[str, str]


def server_key(request: SipRequest, top_via: Via | None = None) -> ServerKey:
    """The key that matches a request to its server transaction (RFC 3261 17.2.3)."""
    via = top_via or parse_via(request.headers.get("Via") or "")
    method = "INVITE" if request.method == "ACK" else request.method
    sent_by = f"{via.host}:{via.port or ''}"
    branch = via.branch
    if branch is not None and branch.startswith(BRANCH_COOKIE):
        # Call-ID and CSeq number too: a retransmission never changes them, while some peers
        # (SIPp's out-of-call scenarios, devices counting branches) reuse a branch for a new
        # request, which RFC 3261 matching alone would answer as a retransmission.
        return ("3261", branch, sent_by, method, request.call_id, str(request.cseq.seq))
    cseq = request.cseq
    return (
        "2543",
        request.uri,
        request.from_.tag or "",
        request.to.tag or "",
        request.call_id,
        str(cseq.seq),
        method,
        str(via),
    )


def client_key(message: SipRequest | SipResponse) -> ClientKey:
    """The key that matches a response to the client transaction that sent its request."""
    vias = message.headers.get_all("Via")
    branch = ""
    if vias:
        branch = parse_via(vias[0]).branch or ""
    return (branch, message.cseq.method)


@dataclass
class ServerTransaction:
    """One incoming request's transaction. Until the final response, a retransmission of the
    request is answered with the last provisional response (if any); after it, with the final
    one, until Timer J ends the transaction."""

    key: ServerKey
    source: Address
    conn: Connection | None = None  # the TCP connection it came on
    last_response: bytes | None = None
    final: bool = False


@dataclass
class ClientTransaction:
    """One outgoing request's transaction: `result` gets the final response (or an error)."""

    key: ClientKey
    dest: Address
    result: asyncio.Future[SipResponse]
    proceeding: bool = False
    retransmissions: int = 0


@dataclass
class TransactionTable:
    """Server and client transactions by key; each ends by a timer set when it completes."""

    servers: dict[ServerKey, ServerTransaction] = field(default_factory=dict)
    clients: dict[ClientKey, ClientTransaction] = field(default_factory=dict)

    def expire_server(self, key: ServerKey, after_s: float) -> None:
        if after_s <= 0:
            self.servers.pop(key, None)
        else:
            asyncio.get_running_loop().call_later(after_s, self.servers.pop, key, None)

    def expire_client(self, key: ClientKey, after_s: float) -> None:
        if after_s <= 0:
            self.clients.pop(key, None)
        else:
            asyncio.get_running_loop().call_later(after_s, self.clients.pop, key, None)


class AnsweredTable:
    """Server transactions the stack answered on the quick path (stack.SipStack's `quick`),
    held until Timer J like the others but each as a 16-byte keyed hash of the transaction's
    key. A retransmission is answered by building the same response again from its bytes,
    with the same To tag (taken from the hash), so nothing else needs keeping. Expiry is by
    whole seconds, oldest first, swept as new ones come in."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(16)
        self._held: dict[bytes, None] = {}
        self._expiry: deque[tuple[float, list[bytes]]] = deque()

    def digest(self, key: tuple[str, ...]) -> bytes:
        """The key's hash; its first 6 bytes in hex are the response's To tag."""
        material = "\0".join(key).encode()  # no NUL in a parsed head: the join is unambiguous
        return hashlib.blake2b(material, digest_size=16, key=self._key).digest()

    def __contains__(self, digest: bytes) -> bool:
        return digest in self._held

    def __len__(self) -> int:
        self.sweep()
        return len(self._held)

    def remember(self, digest: bytes, after_s: float) -> None:
        if after_s <= 0:
            return  # reliable transports: no retransmissions to answer
        now = time.monotonic()
        self.sweep(now)
        until = float(int(now + after_s) + 1)
        if self._expiry and self._expiry[-1][0] == until:
            self._expiry[-1][1].append(digest)
        else:
            self._expiry.append((until, [digest]))
        self._held[digest] = None

    def sweep(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        while self._expiry and self._expiry[0][0] <= now:
            for digest in self._expiry.popleft()[1]:
                self._held.pop(digest, None)


async def run_client(
    transaction: ClientTransaction, send: Callable[[], None], timers: Timers, reliable: bool
) -> SipResponse:
    """Sends the request and waits for its final response (RFC 3261 17.1.2.2).

    Over UDP, Timer E retransmits at T1, 2*T1, ... capped at T2 (at T2 straight away once a
    provisional response came); over TCP nothing is retransmitted. Timer F (64*T1) raises
    SipTimeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timers.f
    interval = timers.t1
    send()
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise SipTimeout(f"no final response in {timers.f:.1f} s")
        wait = remaining if reliable else min(interval, remaining)
        done, _ = await asyncio.wait({transaction.result}, timeout=wait)
        if done:
            return transaction.result.result()
        if reliable or deadline - loop.time() <= 0:
            continue
        send()
        transaction.retransmissions += 1
        interval = timers.t2 if transaction.proceeding else min(interval * 2, timers.t2)
