"""RFC 3261 non-INVITE transactions of the SIP core, over real loopback sockets: Timer E/F
retransmission timing, server retransmissions answered without the handler (Timer J),
matching by branch (a reused Call-ID is a new transaction), Timer K, TCP framing and
connection reuse, and the stack's own answers (405/501/500)."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from gb28181.sip import (
    Address,
    IncomingRequest,
    SipStack,
    SipTimeout,
    SipTransportError,
    build_request,
)
from gb28181.sip.message import SipRequest, SipResponse, parse_message, serialize
from tests.sip_helpers import (
    FAST,
    request_bytes,
    response_to,
    running_stack,
    tcp_peer,
    udp_peer,
    until,
)


def message_to(port: int) -> SipRequest:
    return build_request(
        "MESSAGE",
        f"sip:34020000001320000001@127.0.0.1:{port}",
        from_="<sip:34020000002000000001@3402000000>",
        to="<sip:34020000001320000001@3402000000>",
        body=b"<Query/>",
        content_type="Application/MANSCDP+xml",
    )


async def test_udp_and_tcp_share_one_port() -> None:
    async with running_stack() as stack, udp_peer() as udp:
        udp.send(request_bytes(), stack.port)
        assert parse_message((await udp.next()).data).status == 200  # type: ignore[union-attr]
        async with tcp_peer(stack.port) as tcp:
            await tcp.send(request_bytes(transport="TCP", branch="z9hG4bKtcp"))
            res = parse_message(await tcp.next())
            assert isinstance(res, SipResponse) and res.status == 200
        assert stack.udp_address.port == stack.tcp_address.port == stack.port


async def test_retransmission_answered_from_the_transaction() -> None:
    calls: list[str] = []
    release = asyncio.Event()

    async def slow(incoming: IncomingRequest) -> None:
        calls.append(incoming.request.call_id)
        await release.wait()
        await incoming.respond(200)

    async with running_stack(slow) as stack, udp_peer() as peer:
        data = request_bytes()
        peer.send(data, stack.port)
        await until(lambda: len(calls) == 1)
        peer.send(data, stack.port)  # while the handler runs: absorbed, no second call
        release.set()
        first = await peer.next()
        peer.send(data, stack.port)  # after the final: the same response again
        second = await peer.next()
        assert second.data == first.data
        assert isinstance(first.message, SipResponse) and first.message.status == 200
        # The response went back to where the request came from, with received/rport.
        via = first.message.vias[0]
        assert via.params["rport"] == str(peer.port)
        assert calls == ["c1@127.0.0.1"]


async def test_reused_call_id_with_new_branch_is_a_new_transaction() -> None:
    seen: list[tuple[str, int]] = []

    async def record(incoming: IncomingRequest) -> None:
        seen.append((incoming.request.vias[0].branch or "", incoming.request.cseq.seq))
        await incoming.respond(200)

    async with running_stack(record) as stack, udp_peer() as peer:
        peer.send(request_bytes("REGISTER", branch="z9hG4bKone", cseq=5), stack.port)
        assert (await peer.next()).message.status == 200  # type: ignore[union-attr]
        # Same Call-ID, a lower CSeq and a new branch: the core hands it on (ordering by
        # CSeq is the application's business, per registration or dialog).
        peer.send(request_bytes("REGISTER", branch="z9hG4bKtwo", cseq=1), stack.port)
        assert (await peer.next()).message.status == 200  # type: ignore[union-attr]
        # A reused branch with another Call-ID or CSeq is a new request too (peers do this).
        peer.send(request_bytes("REGISTER", branch="z9hG4bKtwo", cseq=2), stack.port)
        assert (await peer.next()).message.status == 200  # type: ignore[union-attr]
        peer.send(request_bytes("REGISTER", branch="z9hG4bKtwo", cseq=2, call_id="c2"), stack.port)
        assert (await peer.next()).message.status == 200  # type: ignore[union-attr]
        assert seen == [("z9hG4bKone", 5), ("z9hG4bKtwo", 1), ("z9hG4bKtwo", 2), ("z9hG4bKtwo", 2)]


async def test_timer_j_ends_the_server_transaction() -> None:
    calls = 0

    async def count(incoming: IncomingRequest) -> None:
        nonlocal calls
        calls += 1
        await incoming.respond(200)

    async with running_stack(count) as stack, udp_peer() as peer:
        data = request_bytes()
        peer.send(data, stack.port)
        await peer.next()
        started = time.monotonic()
        # Retransmissions within Timer J (64*T1 = 3.2 s here) are absorbed...
        while time.monotonic() - started < FAST.j(False) - 0.5:
            peer.send(data, stack.port)
            await peer.next()
            await asyncio.sleep(0.3)
        assert calls == 1
        # ... after it, the same bytes are a new transaction.
        await asyncio.sleep(0.6)
        peer.send(data, stack.port)
        await peer.next()
        assert calls == 2


async def test_timer_e_doubles_to_t2_and_timer_f_gives_up() -> None:
    async with running_stack() as stack, udp_peer() as silent:
        started = time.monotonic()
        with pytest.raises(SipTimeout):
            await stack.request(message_to(silent.port), Address("udp", "127.0.0.1", silent.port))
        elapsed = time.monotonic() - started
        arrivals = []
        while not silent.arrivals.empty():
            arrivals.append(silent.arrivals.get_nowait())
    assert FAST.f <= elapsed < FAST.f + 1.0
    assert len({a.data for a in arrivals}) == 1  # the same request, same branch, each time
    gaps = [b.at - a.at for a, b in itertools.pairwise(arrivals)]
    # T1, 2*T1, 4*T1 = T2, then T2 (with slack for a loaded machine, never early).
    for gap, expected in zip(gaps, [0.05, 0.1, 0.2, 0.2, 0.2], strict=False):
        assert expected * 0.9 <= gap <= expected + 0.15, gaps
    assert all(gap <= FAST.t2 + 0.15 for gap in gaps)
    assert 12 <= len(arrivals) <= 20  # ~17 sends over 64*T1


async def test_provisional_response_switches_to_t2_then_final() -> None:
    async with running_stack() as stack, udp_peer() as peer:
        dest = Address("udp", "127.0.0.1", peer.port)
        task = asyncio.create_task(stack.request(message_to(peer.port), dest))
        first = await peer.next()
        peer.send(response_to(first.data, 100), stack.port)
        retransmits = [await peer.next(), await peer.next()]
        for earlier, later in zip([first, *retransmits], retransmits, strict=False):
            if earlier is not first:
                assert later.at - earlier.at >= FAST.t2 * 0.9
        peer.send(response_to(first.data, 200), stack.port)
        result = await task
        assert result.status == 200
        # A retransmitted final is absorbed (Timer K); an unknown branch is a stray.
        peer.send(response_to(first.data, 200), stack.port)
        peer.send(
            response_to(first.data.replace(b"branch=z9hG4bK", b"branch=z9hG4bKx"), 200), stack.port
        )
        await until(lambda: stack.drops["stray_response"] == 1)
        assert sum(stack.drops.values()) == 1


async def test_stack_to_stack_both_transports() -> None:
    got: list[tuple[str, bytes]] = []

    async def device(incoming: IncomingRequest) -> None:
        got.append((incoming.source.transport, incoming.request.body))
        await incoming.respond(200, headers=[("X-Seen", "1")], body=b"ok")

    async with running_stack() as hub, running_stack(device) as dev:
        request = message_to(dev.port)
        for dest in (Address("udp", "127.0.0.1", dev.port), Address("tcp", "127.0.0.1", dev.port)):
            res = await hub.request(request, dest)  # the same request, sent again: a new branch
            assert (res.status, res.body, res.headers.get("X-Seen")) == (200, b"ok", "1")
        assert got == [("udp", b"<Query/>"), ("tcp", b"<Query/>")]
        assert "Via" not in request.headers
        assert hub.tcp_connections == 1 and dev.tcp_connections == 1
        assert hub.transactions == 1  # the UDP client transaction, in Timer K


async def test_tcp_is_not_retransmitted_and_times_out() -> None:
    received: list[bytes] = []

    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            received.append(data)

    server = await asyncio.start_server(sink, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with running_stack() as stack:
            with pytest.raises(SipTimeout):
                await stack.request(message_to(port), Address("tcp", "127.0.0.1", port))
    finally:
        server.close()
    assert b"".join(received).count(b"MESSAGE sip:") == 1


def test_the_sip_core_imports_only_the_kernel() -> None:
    import ast
    from pathlib import Path

    core = Path(__file__).resolve().parent.parent / "gb28181" / "sip"
    ours = {"hub", "devices", "ingest", "rules", "incidents", "notify", "vision", "api"}
    ours |= {"shaobing", "gb28181"}
    for path in core.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                assert top not in ours or top == "hub" or name.startswith("gb28181.sip"), (
                    path,
                    name,
                )


async def test_tcp_connect_refused() -> None:
    async with running_stack() as stack, udp_peer() as peer:
        # A port nothing listens on over TCP (the UDP peer's).
        with pytest.raises(SipTransportError):
            await stack.request(message_to(peer.port), Address("tcp", "127.0.0.1", peer.port))


async def test_tcp_framing_coalesced_and_split() -> None:
    bodies: list[bytes] = []

    async def record(incoming: IncomingRequest) -> None:
        bodies.append(incoming.request.body)
        await incoming.respond(200)

    async with running_stack(record) as stack, tcp_peer(stack.port) as tcp:
        one = request_bytes(branch="z9hG4bK1", body=b"one", transport="TCP")
        two = request_bytes(branch="z9hG4bK2", body=b"two", transport="TCP")
        three = request_bytes(branch="z9hG4bK3", body=b"three\r\n\r\n", transport="TCP")
        await tcp.send(b"\r\n\r\n" + one + two)  # a keepalive ping, then two in one segment
        for i in range(0, len(three), 7):
            await tcp.send(three[i : i + 7])
            await asyncio.sleep(0)
        statuses = [parse_message(await tcp.next()).status for _ in range(3)]  # type: ignore[union-attr]
        assert statuses == [200, 200, 200]
        assert sorted(bodies) == [b"one", b"three\r\n\r\n", b"two"]


async def test_tcp_request_reuses_the_connection_the_device_opened() -> None:
    async with running_stack() as stack, tcp_peer(stack.port) as device:
        await device.send(request_bytes("REGISTER", transport="TCP"))
        await device.next()
        dest = Address("tcp", device.host, device.port)
        task = asyncio.create_task(stack.request(message_to(device.port), dest))
        request = parse_message(await device.next())
        assert isinstance(request, SipRequest) and request.method == "MESSAGE"
        assert request.vias[0].transport == "TCP"
        await device.send(serialize_response(request, 200))
        assert (await task).status == 200


def serialize_response(request: SipRequest, status: int) -> bytes:
    return response_to(serialize(request), status)


async def test_tcp_without_content_length_is_closed() -> None:
    async with running_stack() as stack, tcp_peer(stack.port) as tcp:
        await tcp.send(request_bytes(transport="TCP").replace(b"Content-Length: 0\r\n", b""))
        assert await tcp.closed_by_peer()
        assert stack.drops["bad_content_length"] == 1


async def test_stack_answers_what_the_handler_does_not() -> None:
    async def handler(incoming: IncomingRequest) -> None:
        body = incoming.request.body
        if body == b"raise":
            raise RuntimeError("boom")
        if body == b"silent":
            return
        await incoming.respond(200)
        with pytest.raises(RuntimeError):
            await incoming.respond(200)

    async with running_stack(handler) as stack, udp_peer() as peer:
        cases = [
            ("MESSAGE", b"raise", 500, "handler_error"),
            ("MESSAGE", b"silent", 500, "no_response"),
            ("MESSAGE", b"fine", 200, None),
            ("INVITE", b"", 405, "method_not_allowed"),
            ("FROBNICATE", b"", 501, "method_not_allowed"),
        ]
        for i, (method, body, status, _reason) in enumerate(cases):
            peer.send(request_bytes(method, branch=f"z9hG4bKc{i}", body=body), stack.port)
            res = (await peer.next()).message
            assert isinstance(res, SipResponse) and res.status == status, (method, body)
            if status in (405, 501):
                assert "REGISTER" in res.headers.get_all("Allow")
        peer.send(request_bytes("ACK", branch="z9hG4bKack"), stack.port)
        await until(lambda: stack.drops["ack"] == 1)
        assert stack.drops == {
            "handler_error": 1,
            "no_response": 1,
            "method_not_allowed": 2,
            "ack": 1,
        }


async def test_on_drop_callback_and_stop_fails_pending_requests() -> None:
    dropped: list[tuple[str, str]] = []

    async def answer(incoming: IncomingRequest) -> None:
        await incoming.respond(200)

    stack = SipStack(
        "127.0.0.1",
        0,
        answer,
        timers=FAST,
        on_drop=lambda reason, source: dropped.append((reason, source.transport)),
    )
    await stack.start()
    async with udp_peer() as peer:
        peer.send(b"garbage", stack.port)
        await until(lambda: dropped == [("no_header_end", "udp")])
        task = asyncio.create_task(
            stack.request(message_to(peer.port), Address("udp", "127.0.0.1", peer.port))
        )
        await peer.next()
        await stack.stop()
        with pytest.raises(SipTransportError):
            await task
