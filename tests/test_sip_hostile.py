"""Hostile input at the SIP core (issue #28 item 7): each malformed or hostile message gets a
4xx or is dropped, counted by reason; the stack keeps answering the well-behaved peer beside
it without delay. The "no answer" cases are proved by a probe request sent right after: its
200 is the first thing back (the stack handles one socket's datagrams in order)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import time

import pytest

from gb28181.sip import FloodLimits, IncomingRequest, Limits, SipParseError
from gb28181.sip.digest import parse_authorization
from gb28181.sip.message import SipResponse, parse_message
from tests.sip_helpers import request_bytes, running_stack, tcp_peer, udp_peer, until

LIMITS = Limits(
    max_message_bytes=16384,
    max_head_bytes=4096,
    max_line_bytes=1024,
    max_header_count=40,
    max_body_bytes=8192,
)
R = request_bytes()  # a valid MESSAGE with Content-Length: 0


def edit(old: bytes, new: bytes, base: bytes = R) -> bytes:
    assert old in base, old
    return base.replace(old, new, 1)


def with_body(body: bytes, length: bytes | None = None) -> bytes:
    return (
        edit(b"Content-Length: 0", b"Content-Length: " + (length or str(len(body)).encode())) + body
    )


def extra(header: bytes) -> bytes:
    return edit(b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\n" + header + b"\r\n")


# (name, datagram, drop reason, status answered or None)
CASES: list[tuple[str, bytes, str, int | None]] = [
    ("message over the limit", with_body(b"x" * 20000), "message_too_large", 400),
    ("a long header, within the limits", extra(b"X-Pad: " + b"p" * 900), "ok", 200),
    (
        "many long headers",
        extra(b"\r\n".join([b"X-P: " + b"p" * 500] * 9)),
        "headers_too_large",
        400,
    ),
    ("line too long", extra(b"X-Long: " + b"l" * 2000), "line_too_long", 400),
    ("too many headers", extra(b"\r\n".join([b"X-N: 1"] * 50)), "too_many_headers", 400),
    ("body over the limit", with_body(b"b" * 9000), "body_too_large", 400),
    ("negative Content-Length", with_body(b"", b"-1"), "bad_content_length", 400),
    ("Content-Length not a number", with_body(b"", b"abc"), "bad_content_length", 400),
    ("Content-Length huge", with_body(b"", b"99999999999"), "bad_content_length", 400),
    ("Content-Length with sign", with_body(b"12345", b"+5"), "bad_content_length", 400),
    ("Content-Length hex", with_body(b"", b"0x10"), "bad_content_length", 400),
    ("Content-Length empty", with_body(b"", b" "), "bad_content_length", 400),
    ("Content-Length past the body", with_body(b"abc", b"30"), "body_truncated", 400),
    ("Content-Length twice", extra(b"l: 5"), "duplicate_header", 400),
    (
        "no Via",
        edit(b"Via: SIP/2.0/UDP 127.0.0.1:5060;rport;branch=z9hG4bKaaa\r\n", b""),
        "missing_header",
        None,
    ),
    ("no Call-ID", edit(b"Call-ID: c1@127.0.0.1\r\n", b""), "missing_header", None),
    ("empty Call-ID", edit(b"Call-ID: c1@127.0.0.1", b"Call-ID: "), "missing_header", None),
    ("no CSeq", edit(b"CSeq: 1 MESSAGE\r\n", b""), "missing_header", None),
    (
        "no From",
        edit(b"From: <sip:34020000001320000001@3402000000>;tag=f1\r\n", b""),
        "missing_header",
        None,
    ),
    ("no To", edit(b"To: <sip:34020000002000000001@3402000000>\r\n", b""), "missing_header", None),
    ("CSeq of another method", edit(b"CSeq: 1 MESSAGE", b"CSeq: 1 REGISTER"), "bad_cseq", 400),
    ("CSeq not a number", edit(b"CSeq: 1 MESSAGE", b"CSeq: one MESSAGE"), "bad_cseq", 400),
    ("CSeq past 2**31", edit(b"CSeq: 1 MESSAGE", b"CSeq: 4294967296 MESSAGE"), "bad_cseq", 400),
    ("CSeq negative", edit(b"CSeq: 1 MESSAGE", b"CSeq: -1 MESSAGE"), "bad_cseq", 400),
    ("CSeq without method", edit(b"CSeq: 1 MESSAGE", b"CSeq: 1"), "bad_cseq", 400),
    ("Call-ID twice", extra(b"i: other@x"), "duplicate_header", 400),
    ("From twice", extra(b"f: <sip:a@b>;tag=2"), "duplicate_header", 400),
    ("NUL in a header", extra(b"Subject: a\x00b"), "bad_characters", 400),
    ("DEL in a header", extra(b"Subject: \x7f"), "bad_characters", 400),
    ("bare CR in a header", extra(b"Subject: a\rb"), "bad_characters", 400),
    ("not UTF-8", extra(b"Subject: \xff\xfe"), "bad_characters", 400),
    ("LF line endings", R.replace(b"\r\n", b"\n"), "no_header_end", None),
    ("no empty line", R[:-4], "no_header_end", 400),
    (
        "two spaces in the request line",
        edit(b"MESSAGE sip:", b"MESSAGE  sip:"),
        "bad_start_line",
        400,
    ),
    ("SIP/3.0", edit(b" SIP/2.0\r\n", b" SIP/3.0\r\n"), "bad_start_line", None),
    ("method with a bracket", edit(b"MESSAGE sip:", b"MES(SAGE sip:"), "bad_start_line", 400),
    ("http URI", edit(b"sip:34020000002000000001@127.0.0.1 SIP", b"http://x/ SIP"), "bad_uri", 400),
    ("URI with headers", edit(b"@127.0.0.1 SIP", b"@127.0.0.1?X=1 SIP"), "bad_uri", 400),
    (
        "URI host label too long",
        edit(b"@127.0.0.1 SIP", b"@" + b"h" * 300 + b" SIP"),
        "bad_uri",
        400,
    ),
    ("URI bad port", edit(b"@127.0.0.1 SIP", b"@127.0.0.1:0 SIP"), "bad_uri", 400),
    ("asterisk URI", edit(b"sip:34020000002000000001@127.0.0.1 SIP", b"* SIP"), "bad_uri", 400),
    (
        "empty From URI",
        edit(b"<sip:34020000001320000001@3402000000>;tag=f1", b"<>"),
        "bad_uri",
        400,
    ),
    ("unclosed quote in To", edit(b"To: <", b'To: "abc <'), "bad_uri", 400),
    ("unclosed < in To", edit(b"3402000000>\r\nCall", b"3402000000\r\nCall"), "bad_uri", 400),
    (
        "To parameter twice",
        edit(b"3402000000>\r\nCall", b"3402000000>;tag=a;tag=b\r\nCall"),
        "bad_uri",
        400,
    ),
    ("Via SIP/1.0", edit(b"Via: SIP/2.0/UDP", b"Via: SIP/1.0/UDP"), "bad_via", 400),
    ("Via port 70000", edit(b"127.0.0.1:5060;rport", b"127.0.0.1:70000;rport"), "bad_via", 400),
    (
        "Via branch twice",
        edit(b";branch=z9hG4bKaaa", b";branch=z9hG4bKaaa;branch=z9hG4bKb"),
        "bad_via",
        400,
    ),
    ("Via bad IPv6", edit(b"127.0.0.1:5060;rport", b"[zz::1]:5060;rport"), "bad_via", 400),
    ("Via empty element", edit(b";branch=z9hG4bKaaa", b";branch=z9hG4bKaaa,,"), "bad_header", 400),
    ("header without colon", extra(b"NoColonHere"), "bad_header", 400),
    ("header name with a space", extra(b"Bad Name: x"), "bad_header", 400),
    ("continuation first", edit(b"\r\nVia:", b"\r\n folded\r\nVia:"), "bad_header", 400),
    ("Expires not a number", extra(b"Expires: soon"), "bad_header", 400),
    ("Max-Forwards negative", edit(b"Max-Forwards: 70", b"Max-Forwards: -1"), "bad_header", 400),
    ("Contact not a URI", extra(b"Contact: <mailto:a@b>"), "bad_uri", 400),
    ("status code 99", b"SIP/2.0 99 Odd\r\n" + R.split(b"\r\n", 1)[1], "bad_start_line", None),
    ("response to nothing", b"SIP/2.0 200 OK\r\n" + R.split(b"\r\n", 1)[1], "stray_response", None),
    ("binary junk", bytes(range(256)) * 4, "no_header_end", None),
    ("unknown method", request_bytes("FROB", branch="z9hG4bKfrob"), "method_not_allowed", 501),
    ("INVITE", request_bytes("INVITE", branch="z9hG4bKinv"), "method_not_allowed", 405),
    ("CANCEL", request_bytes("CANCEL", branch="z9hG4bKcan"), "method_not_allowed", 405),
    ("ACK", request_bytes("ACK", branch="z9hG4bKack"), "ack", None),
    ("CRLF keepalive", b"\r\n\r\n", "keepalive", None),
]


async def test_hostile_datagrams_answered_or_dropped_and_counted() -> None:
    calls = 0

    async def handler(incoming: IncomingRequest) -> None:
        nonlocal calls
        calls += 1
        await incoming.respond(200)

    assert len(CASES) >= 60
    async with running_stack(handler, limits=LIMITS) as stack, udp_peer() as peer:
        for i, (name, data, reason, status) in enumerate(CASES):
            before = dict(stack.drops)
            # Each case on a branch of its own, so none is a retransmission of another.
            peer.send(data.replace(b"z9hG4bKaaa", f"z9hG4bKh{i}".encode()), stack.port)
            peer.send(request_bytes(branch=f"z9hG4bKprobe{i}", call_id=f"probe{i}"), stack.port)
            # A 400 echoes the request's broken headers, so answers are read as bytes here.
            first = (await peer.next()).data
            probe_answer = b"SIP/2.0 200 OK\r\n", f"Call-ID: probe{i}\r\n".encode()
            if status is None:
                assert first.startswith(probe_answer[0]) and probe_answer[1] in first, name
            else:
                assert first.startswith(f"SIP/2.0 {status} ".encode()), (name, first[:40])
                assert probe_answer[1] not in first, name
                probe = (await peer.next()).data
                assert probe.startswith(probe_answer[0]) and probe_answer[1] in probe, name
            if reason != "ok":
                assert stack.drops[reason] == before.get(reason, 0) + 1, name
                assert sum(stack.drops.values()) == sum(before.values()) + 1, name
        assert calls == len(CASES) + 1  # every probe, and the one valid case


BAD_DIGESTS = [
    "",
    "Basic YWxhZGRpbjpvcGVuc2VzYW1l",
    "Digest",
    'Digest username="a"',
    'Digest username="a", realm="r", nonce="n", uri="sip:x"',
    'Digest username="a", realm="r", nonce="n", uri="sip:x", response="xyz"',
    'Digest username="a", realm="r", nonce="n", uri="sip:x", response="' + "a" * 31 + '"',
    'Digest username="a", realm="r", nonce="n", uri="sip:x", response="' + "g" * 32 + '"',
    'Digest username="a", realm="r", nonce="n", uri="sip:x", response="'
    + "a" * 32
    + '", algorithm=SHA-256',
    'Digest username="a", realm="r", nonce="n", uri="sip:x", response="'
    + "a" * 32
    + '", qop=auth-int, nc=00000001, cnonce="c"',
    'Digest username="a", realm="r", nonce="n", uri="sip:x", response="' + "a" * 32 + '", qop=auth',
    'Digest username="a", realm="r", nonce="n", uri="sip:x", response="'
    + "a" * 32
    + '", qop=auth, nc=1, cnonce="c"',
    'Digest username="a", realm="r", nonce="n", uri="sip:x", response="'
    + "a" * 32
    + '", cnonce="c"',
    'Digest username="a", username="b", realm="r", nonce="n", uri="sip:x", response="'
    + "a" * 32
    + '"',
    'Digest username="a, realm="r", nonce="n", uri="sip:x", response="' + "a" * 32,
    'Digest username="a\x01", realm="r", nonce="n", uri="sip:x", response="' + "a" * 32 + '"',
    'Digest username="'
    + "a" * 3000
    + '", realm="r", nonce="n", uri="sip:x", response="'
    + "a" * 32
    + '"',
    'Digest username="a" realm="r" nonce="n" uri="sip:x" response="' + "a" * 32 + '"',
    'Digest =x, username="a"',
    'Digest username="", realm="r", nonce="n", uri="sip:x", response="' + "a" * 32 + '"',
    'Digest username="a", realm="r", nonce="", uri="sip:x", response="' + "a" * 32 + '"',
    'Digest username="a",, realm="r", nonce="n", uri="sip:x", response="' + "a" * 32 + '"',
]


@pytest.mark.parametrize("value", BAD_DIGESTS)
def test_bad_digest_fields(value: str) -> None:
    with pytest.raises(SipParseError) as err:
        parse_authorization(value)
    assert err.value.reason == "bad_digest"


def test_worst_case_inputs_parse_fast() -> None:
    """Pathological shapes at the size limits: the parser's cost stays linear and small."""
    worst = [
        extra(b"Via: SIP/2.0/UDP " + b"a." * 500 + b"a;branch=z9hG4bKx"),
        extra(b"Contact: " + b",".join([b"<sip:a@b>"] * 30)),
        extra(b"X-P: " + b"a" * 1000),
        edit(b"@127.0.0.1 SIP", b"@" + b"a-" * 450 + b"! SIP"),
        extra(b"To: " + b'"' + b"\\" * 1000),
        with_body(b"\r\n" * 4000),
        b"\r\n" * 8000,
        b"A" * 16000,
    ]
    for data in worst:
        started = time.perf_counter()
        for _ in range(20):
            with contextlib.suppress(SipParseError):
                parse_message(data, LIMITS)
        assert (time.perf_counter() - started) / 20 < 0.005, data[:80]
    value = 'Digest username="' + "\\a" * 900 + '"' + ', x="y"' * 100
    started = time.perf_counter()
    with pytest.raises(SipParseError):
        parse_authorization(value)
    assert time.perf_counter() - started < 0.005


# 20,000 requests a second, 200 times FloodLimits.rate_per_s below. (A flood faster than one
# process can read a socket is for the firewall: no user-space reader survives line rate.)
FLOODER = """
import socket, sys, time
port, count = int(sys.argv[1]), int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.2", 0))
data = sys.stdin.buffer.read()
started = time.monotonic()
for i in range(count):
    s.sendto(data.replace(b"z9hG4bKaaa", b"z9hG4bKf%d" % i), ("127.0.0.1", port))
    if i % 200 == 0:
        time.sleep(max(0.0, started + i / 20000 - time.monotonic()))
"""


async def test_flood_from_one_address_does_not_slow_another() -> None:
    """Another process floods from 127.0.0.2 (past FloodLimits); the device on 127.0.0.1
    keeps getting answers at once while the flood is being dropped."""
    flood = FloodLimits(rate_per_s=100, burst=100)
    async with running_stack(flood=flood) as stack, udp_peer() as device:
        flooder = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            FLOODER,
            str(stack.port),
            "400000",
            stdin=asyncio.subprocess.PIPE,
        )
        assert flooder.stdin is not None
        flooder.stdin.write(request_bytes())
        flooder.stdin.close()
        try:
            await until(lambda: stack.drops["flood"] > 1000)
            latencies = []
            for i in range(20):
                started = time.monotonic()
                asked = request_bytes(branch=f"z9hG4bKd{i}", call_id=f"d{i}")
                res = (await device.request(asked, stack.port)).message
                latencies.append(time.monotonic() - started)
                assert isinstance(res, SipResponse) and res.status == 200
            during = flooder.returncode is None
        finally:
            if flooder.returncode is None:
                flooder.kill()
            await flooder.wait()
    assert during  # the flood was still on when the last answer came
    latencies.sort()
    # Loose bounds: the flooder shares this machine's two cores. The device's datagrams, were
    # they queued behind the flood or dropped with it, would show here as seconds in the median
    # (a lost one costs a 0.5 s retransmission, which the max still allows once).
    assert latencies[len(latencies) // 2] < 0.15 and latencies[-1] < 1.0, latencies


async def test_tcp_connection_limit_per_address() -> None:
    flood = FloodLimits(max_tcp_connections_per_ip=3)
    async with running_stack(flood=flood) as stack:
        peers = [await asyncio.open_connection("127.0.0.1", stack.port) for _ in range(5)]
        try:
            await until(lambda: stack.drops["too_many_connections"] == 2)
            refused = 0
            for reader, writer in peers:
                writer.write(request_bytes(transport="TCP", branch=f"z9hG4bK{id(writer)}"))
                answer = await asyncio.wait_for(reader.read(65536), 5.0)
                refused += answer == b""
                assert answer == b"" or answer.startswith(b"SIP/2.0 200 OK"), answer
            assert refused == 2
        finally:
            for _, writer in peers:
                writer.close()


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("head never ends", b"MESSAGE sip:a@b SIP/2.0\r\nX: " + b"x" * 5000, "headers_too_large"),
        ("no Content-Length", edit(b"Content-Length: 0\r\n", b""), "bad_content_length"),
        ("negative Content-Length", with_body(b"", b"-5"), "bad_content_length"),
        ("Content-Length too large", with_body(b"", b"100000"), "body_too_large"),
        ("Content-Length twice, different", extra(b"l: 7"), "bad_content_length"),
        ("junk before a message", b"\x16\x03\x01\x02\x00\r\n\r\n", "bad_content_length"),
    ],
)
async def test_tcp_stream_that_cannot_be_framed_is_closed(
    name: str, data: bytes, reason: str
) -> None:
    async with running_stack(limits=LIMITS) as stack:
        async with tcp_peer(stack.port) as tcp:
            await tcp.send(data)
            assert await tcp.closed_by_peer(), name
        assert stack.drops == {reason: 1}, name
        async with tcp_peer(stack.port) as again:  # the listener is unharmed
            await again.send(request_bytes(transport="TCP"))
            assert parse_message(await again.next()).status == 200  # type: ignore[union-attr]


async def test_tcp_framed_but_malformed_gets_400_and_the_connection_lives() -> None:
    async with running_stack(limits=LIMITS) as stack, tcp_peer(stack.port) as tcp:
        await tcp.send(
            edit(b"CSeq: 1 MESSAGE", b"CSeq: x MESSAGE") + request_bytes(branch="z9hG4bKok")
        )
        assert (await tcp.next()).startswith(b"SIP/2.0 400 Bad Request\r\n")
        assert (await tcp.next()).startswith(b"SIP/2.0 200 OK\r\n")
        assert stack.drops == {"bad_cseq": 1}


async def test_idle_tcp_connection_is_closed() -> None:
    async with (
        running_stack(flood=FloodLimits(tcp_idle_s=0.3)) as stack,
        tcp_peer(stack.port) as tcp,
    ):
        await tcp.send(b"MESSAGE sip:a@b SIP/2.0\r\n")  # a slow-loris start, never finished
        assert await tcp.closed_by_peer(wait_s=3.0)


async def test_a_peer_that_does_not_read_is_cut_off() -> None:
    """Requests keep coming but the answers are never read: past Connection.MAX_UNSENT queued
    (beyond what the kernel buffers hold), the connection is closed rather than memory grown."""
    big = b"x" * 60000

    async def answer_big(incoming: IncomingRequest) -> None:
        await incoming.respond(200, body=big)

    async with running_stack(answer_big) as stack:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", stack.port))
        _, writer = await asyncio.open_connection(sock=sock)
        try:
            for i in range(2000):
                writer.write(request_bytes(branch=f"z9hG4bKslow{i}", transport="TCP"))
                await writer.drain()
                if stack.drops["unsendable"]:
                    break
                await asyncio.sleep(0)
            await until(lambda: stack.drops["unsendable"] >= 1 and stack.tcp_connections == 0)
        finally:
            writer.close()
