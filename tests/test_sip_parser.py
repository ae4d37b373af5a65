"""The SIP core's parser and digest: generated messages survive serialize -> parse unchanged,
and arbitrary or mangled bytes (whole, or cut into stream reads) raise SipParseError and
nothing else. bench/fuzz_sip.py runs `parse_any` under atheris."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gb28181.sip import digest
from gb28181.sip.message import (
    Headers,
    Limits,
    NameAddr,
    SipParseError,
    SipRequest,
    SipResponse,
    SipUri,
    Via,
    build_request,
    make_response,
    parse_message,
    parse_name_addr,
    parse_uri,
    parse_via,
    serialize,
)
from gb28181.sip.transport import StreamFramer
from tests.sip_helpers import quick_agrees, quick_keepalive_agrees

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))

tokens = st.from_regex(r"[A-Za-z0-9\-.!%*_+`'~]{1,12}", fullmatch=True)
lower_tokens = st.from_regex(r"[a-z0-9\-.!%*_+`'~]{1,12}", fullmatch=True)
labels = st.from_regex(r"[a-z0-9]([a-z0-9\-]{0,8}[a-z0-9])?", fullmatch=True)
ipv4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
hosts = st.one_of(
    ipv4,
    st.lists(labels, min_size=1, max_size=3).map(".".join),
    st.from_regex(r"[0-9]{10}", fullmatch=True),  # a GB/T 28181 domain
    st.just("[2001:db8::1]"),
)
ports = st.none() | st.integers(1, 65535)
users = st.from_regex(r"[A-Za-z0-9\-_.!~*'()&=+$,/]{1,24}", fullmatch=True)
params = st.dictionaries(lower_tokens, st.none() | tokens, max_size=3)
uris = st.builds(
    SipUri,
    host=hosts,
    user=st.none() | users,
    port=ports,
    scheme=st.sampled_from(["sip", "sips"]),
    params=params,
)
text = st.text(
    st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\u2028\u2029"),
    max_size=20,
)
name_addrs = st.builds(NameAddr, uri=uris, display=st.none() | text, params=params)
vias = st.builds(
    Via,
    transport=st.sampled_from(["UDP", "TCP"]),
    host=hosts,
    port=ports,
    params=st.fixed_dictionaries({"branch": tokens.map(lambda t: "z9hG4bK" + t)}).flatmap(
        lambda b: params.map(lambda p: b | {k: v for k, v in p.items() if k != "branch"})
    ),
)
methods = st.sampled_from(["REGISTER", "MESSAGE", "NOTIFY", "SUBSCRIBE", "OPTIONS"]) | tokens
extra_values = st.text(
    st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\u2028\u2029"),
    max_size=40,
).map(lambda s: s.strip(" \t"))


@st.composite
def headers_for(draw: st.DrawFn, method: str) -> Headers:
    h = Headers()
    for via in draw(st.lists(vias, min_size=1, max_size=3)):
        h.add("Via", str(via))
    h.add("From", str(draw(name_addrs)))
    h.add("To", str(draw(name_addrs)))
    h.add("Call-ID", draw(tokens) + "@" + draw(hosts))
    h.add("CSeq", f"{draw(st.integers(0, 2**31 - 1))} {method}")
    for _ in range(draw(st.integers(0, 2))):
        h.add("Contact", str(draw(name_addrs)))
    if draw(st.booleans()):
        h.add("Expires", str(draw(st.integers(0, 10**6))))
    for name, value in draw(st.lists(st.tuples(tokens, extra_values), max_size=4)):
        h.add("X-" + name, value)
    return h


@st.composite
def requests(draw: st.DrawFn) -> SipRequest:
    method = draw(methods)
    uri = str(draw(uris))
    return SipRequest(method, uri, draw(headers_for(method)), draw(st.binary(max_size=300)))


@st.composite
def responses(draw: st.DrawFn) -> SipResponse:
    reason = draw(extra_values).strip()
    h = draw(headers_for(draw(methods)))
    return SipResponse(draw(st.integers(100, 699)), reason, h, draw(st.binary(max_size=300)))


def without_length(headers: Headers) -> list[tuple[str, str]]:
    return [(n, v) for n, v in headers.items() if n != "Content-Length"]


@SETTINGS
@given(st.one_of(requests(), responses()))
def test_round_trip(message: SipRequest | SipResponse) -> None:
    wire = serialize(message)
    parsed = parse_message(wire)
    assert type(parsed) is type(message)
    assert without_length(parsed.headers) == message.headers.items()
    assert parsed.headers.get("Content-Length") == str(len(message.body))
    assert parsed.body == message.body
    if isinstance(message, SipRequest):
        assert isinstance(parsed, SipRequest)
        assert (parsed.method, parsed.uri) == (message.method, message.uri)
    else:
        assert isinstance(parsed, SipResponse)
        assert (parsed.status, parsed.reason) == (message.status, message.reason)
    assert serialize(parsed) == wire


@SETTINGS
@given(uris, name_addrs, vias)
def test_structured_values_round_trip(uri: SipUri, addr: NameAddr, via: Via) -> None:
    assert parse_uri(str(uri)) == uri
    assert parse_name_addr(str(addr)) == addr
    assert parse_via(str(via)) == via


@SETTINGS
@given(requests(), st.data())
def test_stream_framing_any_cuts(message: SipRequest, data: st.DataObject) -> None:
    # A CRLF keepalive and a CRLFCRLF ping between messages are skipped (RFC 5626 3.5.1).
    wire = serialize(message) + data.draw(st.sampled_from([b"", b"\r\n", b"\r\n\r\n"]))
    wire += serialize(message)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=6)))
    framer = StreamFramer()
    out: list[bytes] = []
    for start, end in zip([0, *cuts], [*cuts, len(wire)], strict=True):
        out += framer.feed(wire[start:end])
    assert out == [serialize(message)] * 2


def parse_any(data: bytes, step: int = 0) -> None:
    """The fuzz harness: the whole parse path, datagram and stream, on arbitrary bytes.
    Only SipParseError may come out; the quick path (tests/test_sip_quick.py) reads the bytes
    as the full parser does or leaves them to it, as a MESSAGE (the fuzzer's seed REGISTER
    made one) and as a MANSCDP body."""
    limits = Limits(max_message_bytes=4096, max_head_bytes=2048, max_line_bytes=512)
    as_message = data.replace(b"REGISTER", b"MESSAGE", 2)
    quick_agrees(as_message)
    quick_agrees(as_message, limits)
    quick_keepalive_agrees(data)
    for parse in (
        lambda: parse_message(data),
        lambda: parse_message(data, limits),
        lambda: digest.parse_authorization(data.decode("utf-8", "replace")),
        lambda: digest.parse_challenge(data.decode("utf-8", "replace")),
    ):
        with contextlib.suppress(SipParseError):
            parse()
    framer = StreamFramer(limits)
    try:
        step = step or len(data) or 1
        for i in range(0, len(data), step):
            for message in framer.feed(data[i : i + step]):
                with contextlib.suppress(SipParseError):
                    parse_message(message, limits)
    except SipParseError:
        pass


@SETTINGS
@given(st.binary(max_size=2000), st.integers(0, 64))
def test_arbitrary_bytes_raise_only_parse_errors(data: bytes, step: int) -> None:
    parse_any(data, step)


@SETTINGS
@given(requests(), st.data())
def test_mangled_messages_raise_only_parse_errors(message: SipRequest, data: st.DataObject) -> None:
    wire = bytearray(serialize(message))
    for _ in range(data.draw(st.integers(1, 8))):
        op = data.draw(st.sampled_from(["flip", "insert", "delete", "truncate", "dup"]))
        at = data.draw(st.integers(0, len(wire)))
        if op == "flip" and at < len(wire):
            wire[at] = data.draw(st.integers(0, 255))
        elif op == "insert":
            wire[at:at] = data.draw(
                st.sampled_from([b"\r\n", b":", b";", b"<", b'"', b"\x00", b","])
            )
        elif op == "delete":
            del wire[at : at + data.draw(st.integers(1, 10))]
        elif op == "truncate":
            del wire[at:]
        else:
            wire[at:at] = wire[at : at + data.draw(st.integers(1, 40))]
    parse_any(bytes(wire), data.draw(st.integers(0, 32)))


REQUEST = (
    b"REGISTER sip:34020000002000000001@3402000000 SIP/2.0\r\n"
    b"v: SIP/2.0/UDP 192.168.1.64:5060;rport;branch=z9hG4bK1\r\n"
    b"f: <sip:34020000001320000001@3402000000>;tag=a\r\n"
    b"t: <sip:34020000001320000001@3402000000>\r\n"
    b"i: 1@192.168.1.64\r\n"
    b"CSeq: 1 REGISTER\r\n"
    b"m: <sip:34020000001320000001@192.168.1.64:5060>, <sip:x@10.0.0.1>\r\n"
    b"X-Long: one\r\n two\r\n"
    b"l: 0\r\n\r\n"
)


def test_compact_forms_lists_and_folding() -> None:
    req = parse_message(REQUEST)
    assert isinstance(req, SipRequest)
    assert [n for n, _ in req.headers.items()][:5] == ["Via", "From", "To", "Call-ID", "CSeq"]
    assert req.headers.get("call-id") == "1@192.168.1.64"
    assert len(req.headers.get_all("Contact")) == 2
    assert req.headers.get("X-Long") == "one two"
    assert req.cseq == (1, "REGISTER")
    assert req.vias[0].rport and req.vias[0].branch == "z9hG4bK1"
    assert req.from_.tag == "a" and req.from_.uri.user == "34020000001320000001"


def test_body_framing_on_datagrams() -> None:
    base = REQUEST.replace(b"l: 0\r\n", b"")
    assert parse_message(base + b"<xml/>").body == b"<xml/>"
    # Extra bytes past Content-Length are discarded (RFC 3261 18.3); fewer is an error.
    assert parse_message(base.replace(b"\r\n\r\n", b"\r\nl: 3\r\n\r\n") + b"abcdef").body == b"abc"
    with pytest.raises(SipParseError) as err:
        parse_message(base.replace(b"\r\n\r\n", b"\r\nl: 30\r\n\r\n") + b"abc")
    assert err.value.reason == "body_truncated"


def test_make_response_copies_and_tags() -> None:
    req = parse_message(REQUEST)
    assert isinstance(req, SipRequest)
    res = make_response(req, 200, headers=[("Expires", "3600")], to_tag="t1")
    assert res.headers.get_all("Via") == req.headers.get_all("Via")
    assert res.to.tag == "t1" and res.from_.tag == "a"
    assert res.call_id == req.call_id and res.cseq == req.cseq
    assert make_response(req, 100).to.tag is None
    again = parse_message(serialize(res))
    assert isinstance(again, SipResponse) and again.reason == "OK"


def test_headers_keep_order() -> None:
    h = Headers([("Via", "a"), ("To", "t"), ("Via", "b"), ("X-A", "1")])
    h.add("v", "z", first=True)
    assert h.get_all("via") == ["z", "a", "b"]
    h.replace("Via", ["y", "b"])
    assert h.items() == [("Via", "y"), ("Via", "b"), ("To", "t"), ("X-A", "1")]
    h.set("x-a", "2")
    h.set("Expires", "60")
    assert h.items()[-2:] == [("x-a", "2"), ("Expires", "60")]  # unknown names as last set
    h.remove("VIA")
    assert "Via" not in h and h.get("via") is None and len(h) == 3
    assert h.copy() == h


def test_headers_refuse_injection() -> None:
    req = build_request("MESSAGE", "sip:a@b", from_="<sip:x@y>", to="<sip:a@b>")
    assert req.from_.tag
    with pytest.raises(ValueError):
        req.headers.add("Subject", "x\r\nVia: evil")
    with pytest.raises(ValueError):
        req.headers.set("Bad Name", "x")


# RFC 2617 3.5's worked example.
RFC2617 = (
    'Digest username="Mufasa", realm="testrealm@host.com", '
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth, '
    'nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", '
    'opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)


def test_digest_known_answer_and_legacy() -> None:
    creds = digest.parse_authorization(RFC2617)
    assert digest.verify(creds, "GET", "Circle Of Life")
    assert not digest.verify(creds, "GET", "circle of life")
    assert not digest.verify(creds, "POST", "Circle Of Life")
    # RFC 2069 form (no qop), as old devices send it; and our own client side both ways.
    for qop in ("auth", None):
        ch = digest.challenge("3402000000", "n0nce", qop=qop)
        auth = digest.authorization_for(ch, "REGISTER", "sip:3402000000", "dev", "pw")
        c = digest.parse_authorization(auth)
        assert c.qop == qop
        assert digest.verify(c, "REGISTER", "pw")
        assert digest.verify(c, "REGISTER", ha1_hex=digest.ha1("dev", "3402000000", "pw"))
        assert not digest.verify(c, "REGISTER", "pw2")


def test_nonces() -> None:
    issuer = digest.NonceIssuer(ttl_s=60)
    nonce = issuer.issue(now=1000.0)
    assert issuer.check(nonce, now=1030.0) == "ok"
    assert issuer.check(nonce, now=1061.0) == "stale"
    assert digest.NonceIssuer().check(nonce, now=1030.0) == "invalid"
    tampered = nonce[:-2] + ("A" if nonce[-2] != "A" else "B") + nonce[-1]
    assert issuer.check(tampered, now=1030.0) == "invalid"
    for junk in ("", "x", "=" * 43, "é" * 43, nonce + "A"):
        assert issuer.check(junk) == "invalid"
