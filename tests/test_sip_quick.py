"""The quick path for plain keepalive MESSAGEs (gb28181/sip/quick.py, manscdp.quick_keepalive)
against the full parsers: generated keepalives in every form the quick path reads are taken by
it and read as the full parser reads them, with the same 200 byte for byte; forms it does not
read, and mangled or arbitrary bytes, are left to the full parser; and over real sockets the
stack answers the quick path's transactions, their retransmissions and the full path's as
RFC 3261 wants."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gb28181.sip import IncomingRequest
from gb28181.sip.message import Limits, SipResponse, parse_message
from gb28181.sip.quick import QuickMessage, quick_message
from gb28181.sip.transport import Address, FloodLimits
from tests.sip_helpers import (
    FAST,
    quick_agrees,
    quick_keepalive_agrees,
    running_stack,
    tcp_peer,
    udp_peer,
    until,
)

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))

HUB = "34020000002000000001"
DEVICE = "34020000001320000001"
ipv4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
labels = st.from_regex(r"[a-z0-9]([a-z0-9\-]{0,8}[a-z0-9])?", fullmatch=True)
hosts = st.one_of(
    ipv4,
    st.lists(labels, min_size=1, max_size=3).map(".".join),
    st.from_regex(r"[0-9]{10}", fullmatch=True),  # a GB/T 28181 domain
)
ports = st.one_of(st.just(""), st.integers(1, 65535).map(lambda p: f":{p}"))
tokens = st.from_regex(r"[A-Za-z0-9\-.!%*_+`'~]{1,12}", fullmatch=True)
mixed_case = st.sampled_from(["tag", "TAG", "Tag", "rport", "RPort", "lr", "x-a"])
values = st.from_regex(r"[A-Za-z0-9\-.!%*_+`'~:/&$]{1,16}", fullmatch=True)
users = st.one_of(st.just(DEVICE), st.from_regex(r"[A-Za-z0-9]{1,24}", fullmatch=True))
# Header names as devices spell them: canonical, lower or upper case, compact.
NAMES = {
    "Via": ["Via", "via", "VIA", "v"],
    "From": ["From", "from", "f"],
    "To": ["To", "TO", "t"],
    "Call-ID": ["Call-ID", "call-id", "Call-Id", "i"],
    "CSeq": ["CSeq", "CSEQ", "cseq"],
    "Max-Forwards": ["Max-Forwards", "max-forwards"],
    "Content-Type": ["Content-Type", "c"],
    "User-Agent": ["User-Agent"],
    "Date": ["Date"],
    "X-GB-Ver": ["X-GB-Ver"],
    "Content-Length": ["Content-Length", "content-length", "l"],
}


@st.composite
def params(draw: st.DrawFn, first: list[tuple[str, str | None]]) -> str:
    """`;name[=value]` parameters, names unique whatever their case."""
    extra = draw(st.lists(st.tuples(mixed_case, st.none() | values), max_size=3))
    seen: set[str] = set()
    out = ""
    for name, value in first + extra:
        if name.lower() in seen:
            continue
        seen.add(name.lower())
        if name.lower() == "tag" and value is None:
            value = "t1"  # ";tag" alone is left to the full path (a test below)
        out += f";{name}" if value is None else f";{name}={value}"
    return out


@st.composite
def vias(draw: st.DrawFn) -> str:
    branch = "z9hG4bK" + draw(tokens)
    first: list[tuple[str, str | None]] = [("branch", branch)]
    rport = draw(st.sampled_from([None, "rport", "rport=5060"]))
    if rport is not None:
        name, _, value = rport.partition("=")
        first.insert(draw(st.integers(0, 1)), (name, value or None))
    if draw(st.booleans()):
        first.append(("received", draw(ipv4)))
    transport = draw(st.sampled_from(["UDP", "TCP"]))
    return f"SIP/2.0/{transport} {draw(hosts)}{draw(ports)}{draw(params(first))}"


@st.composite
def addresses(draw: st.DrawFn, user: str, tag: bool) -> str:
    first: list[tuple[str, str | None]] = [("tag", draw(tokens))] if tag else []
    return f"<sip:{user}@{draw(hosts)}{draw(ports)}>{draw(params(first))}"


@st.composite
def keepalive_bodies(draw: st.DrawFn) -> tuple[bytes, str, str]:
    """A Notify Keepalive in the plain forms devices send: (body, SN, DeviceID)."""
    sn = draw(st.from_regex(r"[0-9]{1,10}", fullmatch=True))
    device = draw(st.sampled_from([DEVICE, "34020000001110000009", "44031100002000000001"]))
    gap = st.sampled_from(["", "\r\n", "\n", " ", "\t", "\r\n  "])
    pad = st.sampled_from(["", " ", "\r\n"])
    children = [
        f"<CmdType>{draw(pad)}Keepalive{draw(pad)}</CmdType>",
        f"<SN>{draw(pad)}{sn}{draw(pad)}</SN>",
        f"<DeviceID>{device}</DeviceID>",
    ]
    for tag in draw(st.lists(st.sampled_from(["Status", "Info", "Extra_1"]), max_size=2)):
        children.append(f"<{tag}>{draw(st.sampled_from(['OK', '', 'ON LINE', 'a>b']))}</{tag}>")
    order = draw(st.permutations(children))
    decl = draw(
        st.sampled_from(
            [
                "",
                '<?xml version="1.0" encoding="GB2312"?>',
                '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>',
                "<?XML version='1.0' encoding='gb18030'?>",
                '<?xml version="1.0"?>',
            ]
        )
    )
    inner = "".join(draw(gap) + child for child in order)
    body = f"{draw(gap)}{decl}{draw(gap)}<Notify>{inner}{draw(gap)}</Notify>{draw(gap)}"
    return body.encode(), sn, device


@st.composite
def keepalives(draw: st.DrawFn) -> bytes:
    """A keepalive MESSAGE in a form the quick path reads."""
    body, _, _ = draw(keepalive_bodies())
    seq = str(draw(st.integers(0, 2**31 - 1)))
    seq = (draw(st.sampled_from(["", "0", "00"])) + seq)[-10:]  # at most 10 digits
    headers = {
        "Via": draw(vias()),
        "From": draw(addresses(DEVICE, tag=True)),
        "To": draw(addresses(HUB, tag=draw(st.booleans()))),
        "Call-ID": draw(st.from_regex(r"[!-~]([ -~]{0,30}[!-~])?", fullmatch=True)),
        "CSeq": f"{seq} MESSAGE",
        "Content-Length": str(len(body)),
    }
    for name, value in (
        ("Max-Forwards", "70"),
        ("Content-Type", "Application/MANSCDP+xml"),
        ("User-Agent", "IP Camera"),
        ("Date", "2026-12-07T10:00:00"),
        ("X-GB-Ver", "3.0"),
    ):
        if draw(st.booleans()):
            headers[name] = value
    lines = []
    for name in draw(st.permutations(list(headers))):
        spelled = draw(st.sampled_from(NAMES[name]))
        before, after = draw(st.sampled_from([("", " "), ("", ""), (" ", " "), ("", "\t")]))
        lines.append(f"{spelled}{before}:{after}{headers[name]}")
    uri = f"sip:{HUB}@{draw(hosts)}{draw(ports)}{draw(st.sampled_from(['', ';transport=udp']))}"
    head = f"MESSAGE {uri} SIP/2.0\r\n" + "\r\n".join(lines) + "\r\n\r\n"
    return head.encode() + body + draw(st.sampled_from([b"", b"\r\n", b"junk"]))


SOURCES = st.builds(
    Address, st.just("udp"), st.one_of(ipv4, st.just("127.0.0.1")), st.integers(1, 65535)
)


@SETTINGS
@given(keepalives(), SOURCES)
def test_plain_keepalives_take_the_quick_path_and_read_as_the_full_parser_reads_them(
    data: bytes, source: Address
) -> None:
    quick = quick_agrees(data, source=source)
    assert quick is not None
    assert quick_keepalive_agrees(quick.body) is not None


@SETTINGS
@given(keepalive_bodies())
def test_plain_keepalive_bodies_read_as_read_manscdp_reads_them(
    generated: tuple[bytes, str, str],
) -> None:
    body, sn, device = generated
    assert quick_keepalive_agrees(body) == (sn, device)


# Forms the quick path leaves to the full parser: each replaces one thing in a plain keepalive.
UNUSUAL = [
    (b"From: <sip:", b'From: "Cam 1" <sip:'),  # a display name
    (b"From: <sip:", b"From: sip:"),  # no angle brackets
    (b"From: <sip:", b"From: <sips:"),
    (b"\r\nCSeq:", b"\r\nContact: <sip:x@10.0.0.1>\r\nCSeq:"),
    (b"\r\nCSeq:", b"\r\nVia: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKp\r\nCSeq:"),  # a proxy's Via
    (b"\r\nCSeq:", b"\r\nRoute: <sip:p@10.0.0.1;lr>\r\nCSeq:"),
    (b"\r\nCSeq:", b"\r\nSubject: x\r\n y\r\nCSeq:"),  # a folded line
    (b"\r\nCSeq:", b"\r\nCall-ID: twice\r\nCSeq:"),
    (b"\r\nCSeq:", b"\r\nUser-Agent: \xe6\x91\x84\xe5\x83\x8f\r\nCSeq:"),  # UTF-8 in a header
    (b"branch=z9hG4bK", b"branch="),  # an RFC 2543 branch
    (b"branch=z9hG4bK", b'branch="z9hG4bK";x=z9hG4bK'),
    (b";tag=f1", b";tag=f1;TAG=f2"),  # a parameter twice
    (
        b"To: <sip:34020000002000000001@3402000000>",
        b"To: <sip:34020000002000000001@3402000000>;tag",
    ),
    (b"To: <sip:34020000002000000001@3402000000>", b"To: <sip:hub@[2001:db8::1]>"),
    (b"1 MESSAGE", b"1 NOTIFY"),
    (b"1 MESSAGE", b"2147483648 MESSAGE"),
    (b"Max-Forwards: 70", b"Max-Forwards: seventy"),
    (b"SIP/2.0/UDP 127.0.0.1:5060", b"SIP/2.0/UDP 127.0.0.1:05060"),
    (b"SIP/2.0/UDP 127.0.0.1:5060", b"SIP/2.0/UDP 127.0.0.1:70000"),
    (b"SIP/2.0/UDP", b"SIP/2.0/SCTP"),
    (b"<CmdType>Keepalive", b"<CmdType>Catalog"),
    (b"<SN>7</SN>", b"<SN>7</SN><SN>8</SN>"),  # the first counts: quick or not, the same
    (b"<Status>OK</Status>", b"<Status>\xd4\xda\xcf\xdf</Status>"),  # GB2312 text
    (b"<Status>OK</Status>", b"<Status>A&amp;B</Status>"),
    (b"<Status>OK</Status>", b"<!-- c --><Status>OK</Status>"),
    (b"<Status>OK</Status>", b"<Info><DeviceID>1</DeviceID></Info>"),
    (b"<Status>OK</Status>", b'<Status v="1">OK</Status>'),
    (b"<Status>OK</Status>", b"<Status><![CDATA[OK]]></Status>"),
    (b"<Status>OK</Status>", b"<Status>OK</Stat>"),
    (b"<Status>OK</Status>", b"<Status>OK]]></Status>"),
    (b"<Notify>", b"<Notify>text"),
    (b"</Notify>", b"</Notify><?pi x?>"),
    (b"<SN>7</SN>", b"<SN>" + b"9" * 40 + b"</SN>"),
    (b"<SN>7</SN>", b"<SN>7 8</SN>"),
]


def plain_keepalive(body_extra: bytes = b"") -> bytes:
    body = (
        b'<?xml version="1.0" encoding="GB2312"?>\r\n<Notify>\r\n<CmdType>Keepalive</CmdType>\r\n'
        b"<SN>7</SN>\r\n<DeviceID>" + DEVICE.encode() + b"</DeviceID>\r\n"
        b"<Status>OK</Status>\r\n</Notify>\r\n" + body_extra
    )
    head = (
        f"MESSAGE sip:{HUB}@127.0.0.1:5060 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:5060;rport;branch=z9hG4bKk1\r\n"
        f"From: <sip:{DEVICE}@3402000000>;tag=f1\r\n"
        f"To: <sip:{HUB}@3402000000>\r\n"
        "Call-ID: k1@127.0.0.1\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\n"
        "Content-Type: Application/MANSCDP+xml\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def with_length(data: bytes) -> bytes:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = [ln for ln in head.split(b"\r\n") if not ln.startswith(b"Content-Length:")]
    return b"\r\n".join([*lines, b"Content-Length: %d" % len(body)]) + b"\r\n\r\n" + body


def test_unusual_forms_are_left_to_the_full_parser_or_read_alike() -> None:
    plain = plain_keepalive()
    quick = quick_agrees(plain)
    assert quick is not None and quick_keepalive_agrees(quick.body) == ("7", DEVICE)
    taken = []
    for old, new in UNUSUAL:
        assert old in plain, old
        data = with_length(plain.replace(old, new, 1))
        quick = quick_agrees(data)  # raises if the quick path reads it otherwise
        if quick is not None and quick_keepalive_agrees(quick.body) is not None:
            taken.append(new)
    assert taken == [b"<SN>7</SN><SN>8</SN>"]


@SETTINGS
@given(keepalives(), st.data())
def test_mangled_keepalives_are_read_alike_or_left_to_the_full_parser(
    data: bytes, draw: st.DataObject
) -> None:
    wire = bytearray(data)
    for _ in range(draw.draw(st.integers(1, 6))):
        op = draw.draw(st.sampled_from(["flip", "insert", "delete", "dup"]))
        at = draw.draw(st.integers(0, len(wire)))
        if op == "flip" and at < len(wire):
            wire[at] = draw.draw(st.integers(0, 255))
        elif op == "insert":
            wire[at:at] = draw.draw(
                st.sampled_from([b"\r\n", b":", b";", b"<", b">", b'"', b"\x00", b",", b" ", b"&"])
            )
        elif op == "delete":
            del wire[at : at + draw.draw(st.integers(1, 10))]
        else:
            wire[at:at] = wire[at : at + draw.draw(st.integers(1, 40))]
    quick = quick_agrees(bytes(wire))
    quick_agrees(bytes(wire), Limits(max_message_bytes=600, max_head_bytes=300, max_line_bytes=80))
    quick_keepalive_agrees(quick.body if quick is not None else bytes(wire))


def test_the_limits_hold_on_the_quick_path() -> None:
    plain = plain_keepalive()
    head_size = plain.index(b"\r\n\r\n")
    for limits in (
        Limits(max_message_bytes=len(plain) - 1),
        Limits(max_head_bytes=head_size - 1),
        Limits(max_line_bytes=40),
        Limits(max_body_bytes=100),
    ):
        assert quick_message(plain, limits) is None
    long_body = plain_keepalive(b" " * 3000)
    assert quick_agrees(long_body) is not None
    assert quick_keepalive_agrees(quick_message(long_body).body) is None  # type: ignore[union-attr]


# --- over real sockets -------------------------------------------------------------------


async def test_the_stack_answers_quick_keepalives_as_the_full_path_does() -> None:
    """The same keepalive to a stack without and with the quick path: the same 200 but for
    the To tag; a retransmission gets the quick path's 200 again, tag and all, without the
    application seeing it twice."""
    taken: list[str] = []

    def quick(msg: QuickMessage, source: Address) -> bool:
        taken.append(msg.from_user)
        return True

    answers: list[bytes] = []
    async with udp_peer() as peer:
        for handler in (None, quick):
            async with running_stack(quick=handler) as stack:
                data = plain_keepalive()
                peer.send(data, stack.port)
                answers.append((await peer.next()).data)
                if handler is not None:
                    peer.send(data, stack.port)
                    again = (await peer.next()).data
                    assert again == answers[-1]
    full, fast = (parse_message(a) for a in answers)
    assert isinstance(full, SipResponse) and isinstance(fast, SipResponse)
    assert full.status == fast.status == 200
    assert full.to.tag and fast.to.tag and full.to.tag != fast.to.tag
    assert answers[0].replace(full.to.tag.encode(), fast.to.tag.encode()) == answers[1]
    assert taken == [DEVICE]


async def test_what_the_application_declines_takes_the_full_path() -> None:
    """Declined on the quick path (here: the first time), a keepalive is the handler's; its
    retransmission, which the application would now take, is still the full path's
    transaction and answered as that one was."""
    decline = True
    handled: list[str] = []

    def quick(msg: QuickMessage, source: Address) -> bool:
        return not decline

    async def refuse(incoming: IncomingRequest) -> None:
        handled.append(incoming.request.call_id)
        await incoming.respond(403, "Not Registered")

    async with running_stack(refuse, quick=quick) as stack, udp_peer() as peer:
        data = plain_keepalive()
        peer.send(data, stack.port)
        first = (await peer.next()).message
        decline = False
        peer.send(data, stack.port)
        again = (await peer.next()).message
        assert isinstance(first, SipResponse) and isinstance(again, SipResponse)
        assert first.status == again.status == 403 and again.to.tag == first.to.tag
        peer.send(data.replace(b"z9hG4bKk1", b"z9hG4bKk2"), stack.port)  # a new transaction
        third = (await peer.next()).message
        assert isinstance(third, SipResponse) and third.status == 200
    assert handled == ["k1@127.0.0.1"]


async def test_quick_transactions_over_tcp_and_their_expiry() -> None:
    """Over TCP the 200 goes back on the connection and nothing is held (no retransmissions
    there); over UDP the transaction is held for Timer J and then forgotten."""

    def quick(msg: QuickMessage, source: Address) -> bool:
        return True

    async with running_stack(quick=quick, timers=FAST) as stack:
        async with tcp_peer(stack.port) as tcp:
            await tcp.send(plain_keepalive().replace(b"SIP/2.0/UDP", b"SIP/2.0/TCP"))
            res = parse_message(await tcp.next())
            assert isinstance(res, SipResponse) and res.status == 200
        assert stack.transactions == 0
        async with udp_peer() as peer:
            peer.send(plain_keepalive(), stack.port)
            await peer.next()
            assert stack.transactions == 1
            await until(lambda: stack.transactions == 0, wait_s=FAST.j(False) + 5)


async def test_the_quick_table_is_bounded() -> None:
    """Past `max_quick_transactions` held, plain MESSAGEs take the full path."""
    seen: list[str] = []

    def quick(msg: QuickMessage, source: Address) -> bool:
        seen.append(msg.call_id)
        return True

    flood = FloodLimits(max_quick_transactions=2)
    async with running_stack(quick=quick, flood=flood) as stack, udp_peer() as peer:
        for n in range(3):
            data = plain_keepalive().replace(b"k1", f"n{n}".encode())
            peer.send(data, stack.port)
            res = (await peer.next()).message
            assert isinstance(res, SipResponse) and res.status == 200
    assert seen == ["n0@127.0.0.1", "n1@127.0.0.1"]


async def test_a_failing_quick_handler_leaves_the_request_to_the_full_path() -> None:
    def broken(msg: QuickMessage, source: Address) -> bool:
        raise RuntimeError("a bug in the application")

    async with running_stack(quick=broken) as stack, udp_peer() as peer:
        peer.send(plain_keepalive(), stack.port)
        res = (await peer.next()).message
        assert isinstance(res, SipResponse) and res.status == 200  # the handler's answer
        assert stack.transactions == 1 and len(stack._table.servers) == 1
