"""Hostile SIP at the GB/T 28181 server: malformed messages, unknown methods, bad digests,
XML bombs, wrong charsets, spoofed ids, floods, password guessing. Each is answered 4xx or
dropped, and counted by reason; a registered device beside them keeps working throughout."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import psycopg
import pytest

from gb28181.sip import FloodLimits, serialize
from hub.secret import hmac_key
from hub.settings import Settings
from tests.eventually import eventually
from tests.gb_helpers import (
    HUB_ID,
    REALM,
    Peer,
    counted,
    counter,
    gb_running,
    register_device,
)

GOOD, OTHER = "44031100001320000011", "44031100001320000012"
OTHER_CAMERA = "44031100001310000099"


@pytest.fixture
def hub(settings: Settings, database_url: str, clean_registry: None) -> Iterator[int]:
    flood = FloodLimits(rate_per_s=300, burst=300)
    with gb_running(database_url, hmac_key(settings), flood=flood, failure_limit=20) as port:
        yield port


@dataclass
class Case:
    name: str
    send: Callable[[], None]
    peer: Peer
    unknown_method: bool = False


def _raw(peer: Peer, text: str | bytes) -> Callable[[], None]:
    data = text.encode() if isinstance(text, str) else text
    return lambda: peer.send(data)


def _head(method: str = "MESSAGE", user: str = GOOD, extra: str = "", port: int = 5060) -> str:
    return (
        f"{method} sip:{HUB_ID}@127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.9:5060;rport;branch=z9hG4bK{time.monotonic_ns()}\r\n"
        f"From: <sip:{user}@{REALM}>;tag=h\r\nTo: <sip:{HUB_ID}@{REALM}>\r\n"
        f"Call-ID: hostile-{time.monotonic_ns()}\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\n"
        f"{extra}"
    )


def _parse_cases(peer: Peer, port: int) -> list[Case]:
    """Broken SIP: sizes, framing, missing and malformed headers."""
    ok_end = "Content-Length: 0\r\n\r\n"
    texts: dict[str, str | bytes] = {
        "status_line_only": b"SIP/2.0\r\n\r\n",
        "binary_garbage": bytes(range(256)) * 4,
        "nul_bytes": b"\x00" * 300,
        "no_header_end": _head(port=port) + "Content-Length: 0\r\n",
        "line_too_long": _head(port=port, extra="Subject: " + "x" * 5000 + "\r\n") + ok_end,
        "too_many_headers": _head(port=port, extra="X-A: 1\r\n" * 100) + ok_end,
        "headers_too_large": _head(port=port, extra=("X-B: " + "y" * 3000 + "\r\n") * 7) + ok_end,
        "body_too_large": _head(port=port) + "Content-Length: 65000\r\n\r\n" + "z" * 65000,
        "content_length_short": _head(port=port) + "Content-Length: 50\r\n\r\n<a/>",
        "content_length_text": _head(port=port) + "Content-Length: many\r\n\r\n",
        "content_length_negative": _head(port=port) + "Content-Length: -5\r\n\r\n",
        "content_length_twice": _head(port=port) + "Content-Length: 0\r\nContent-Length: 3\r\n\r\n",
        "bad_start_line": "HELLO WORLD\r\n" + ok_end,
        "bad_version": f"MESSAGE sip:{HUB_ID}@x SIP/3.0\r\n" + ok_end,
        "missing_via": _head(port=port).replace("Via:", "X-Via:") + ok_end,
        "missing_call_id": _head(port=port).replace("Call-ID:", "X-Call:") + ok_end,
        "missing_cseq": _head(port=port).replace("CSeq:", "X-CSeq:") + ok_end,
        "missing_from": _head(port=port).replace("From:", "X-From:") + ok_end,
        "cseq_method_differs": _head(port=port).replace("CSeq: 1 MESSAGE", "CSeq: 1 NOTIFY") + ok_end,
        "cseq_not_a_number": _head(port=port).replace("CSeq: 1 ", "CSeq: one ") + ok_end,
        "cseq_too_large": _head(port=port).replace("CSeq: 1 ", "CSeq: 99999999999 ") + ok_end,
        "bad_request_uri": _head(port=port).replace(f"sip:{HUB_ID}@127.0.0.1:{port}", "http://x") + ok_end,
        "bad_from_uri": _head(port=port).replace("<sip:", "<mailto:", 1) + ok_end,
        "bad_via": _head(port=port).replace("SIP/2.0/UDP 127.0.0.9:5060", "garbage") + ok_end,
        "header_without_colon": _head(port=port, extra="NoColonHere\r\n") + ok_end,
        "control_characters": _head(port=port, extra="Subject: a\x01b\r\n") + ok_end,
        "bare_lf_line": _head(port=port, extra="Subject: a\nb\r\n") + ok_end,
        "not_utf8_header": _head(port=port, extra="Subject: ").encode() + b"\xff\xfe\r\n" + ok_end.encode(),
    }  # fmt: skip
    return [Case(name, _raw(peer, text), peer) for name, text in texts.items()]


def _method_cases(peer: Peer) -> list[Case]:
    known = ("INVITE", "BYE", "CANCEL", "PUBLISH", "REFER", "UPDATE", "PRACK", "SUBSCRIBE")
    cases = [Case(f"method_{m}", _request(peer, m, GOOD), peer) for m in known]
    unknown = ("FOO", "HACK", "GET")
    cases += [Case(f"unknown_{m}", _request(peer, m, GOOD), peer, unknown_method=True)
              for m in unknown]  # fmt: skip
    return cases


def _request(
    peer: Peer, method: str, user: str, body: bytes = b"",
    headers: list[tuple[str, str]] | None = None,
) -> Callable[[], None]:  # fmt: skip
    """Send a fresh request (a new branch each time) when called."""
    return lambda: peer.send(serialize(peer.request(method, user, body, headers=headers)))


def _digest_cases(peer: Peer) -> list[Case]:
    """REGISTERs with broken or wrong Authorization headers."""
    values = {
        "auth_basic": "Basic Zm9vOmJhcg==",
        "auth_empty_digest": "Digest",
        "auth_no_response": f'Digest username="{GOOD}", realm="{REALM}", nonce="n", uri="sip:x"',
        "auth_garbage": 'Digest ,,,==="""',
        "auth_qop_without_cnonce": (
            f'Digest username="{GOOD}", realm="{REALM}", nonce="n", uri="sip:x",'
            ' response="00000000000000000000000000000000", qop=auth'
        ),
        "auth_wrong_realm": (
            f'Digest username="{GOOD}", realm="evil", nonce="n", uri="sip:x",'
            ' response="00000000000000000000000000000000"'
        ),
        "auth_other_user": (
            f'Digest username="{OTHER}", realm="{REALM}", nonce="n", uri="sip:x",'
            ' response="00000000000000000000000000000000"'
        ),
        "auth_forged_nonce": (
            f'Digest username="{GOOD}", realm="{REALM}", nonce="{"A" * 43}", uri="sip:x",'
            ' response="00000000000000000000000000000000"'
        ),
        "auth_huge_value": f'Digest username="{"u" * 3000}", realm="{REALM}"',
        "auth_unknown_device": (
            'Digest username="44031100001329999999", realm="' + REALM + '", nonce="n",'
            ' uri="sip:x", response="00000000000000000000000000000000"'
        ),
    }
    unknown = "44031100001329999999"
    return [
        Case(name, _request(peer, "REGISTER", unknown if name == "auth_unknown_device" else GOOD,
                            headers=[("Authorization", value)]), peer)
        for name, value in values.items()
    ]  # fmt: skip


def _manscdp(cmd: str, body_extra: str = "", *, enc: str = "GB2312", device: str = GOOD) -> str:
    return (
        f'<?xml version="1.0" encoding="{enc}"?><Notify><CmdType>{cmd}</CmdType><SN>1</SN>'
        f"<DeviceID>{device}</DeviceID>{body_extra}</Notify>"
    )


def _xml_cases(peer: Peer) -> list[Case]:
    """Bodies from the registered device itself."""
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">'
        '<!ENTITY c "&b;&b;&b;&b;">]><Notify><CmdType>&c;</CmdType></Notify>'
    )
    bodies: dict[str, bytes] = {
        "xml_bomb": bomb.encode(),
        "xml_external_entity": (
            b'<?xml version="1.0"?><!DOCTYPE n [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b"<Notify><CmdType>&x;</CmdType></Notify>"
        ),
        "xml_parameter_entity": b'<!DOCTYPE n [<!ENTITY % p SYSTEM "http://x/">%p;]><Notify/>',
        "xml_deep": (b"<Notify>" + b"<a>" * 200 + b"</a>" * 200 + b"</Notify>"),
        "xml_wide": b"<Notify>" + b"<a/>" * 6000 + b"</Notify>",
        "xml_long_text": _manscdp("Keepalive", "<Status>" + "x" * 9000 + "</Status>").encode(),
        "xml_processing_instruction": b"<Notify><?evil x?><CmdType>Keepalive</CmdType></Notify>",
        "xml_unclosed": b"<Notify><CmdType>Keepalive</CmdType>",
        "xml_not_xml": b"{\"cmd\": \"Keepalive\"}",
        "xml_no_cmd_type": b"<Notify><SN>1</SN><DeviceID>x</DeviceID></Notify>",
        "xml_empty": b"",
        "charset_lies_utf8": _manscdp("Keepalive", "<Status>在线</Status>", enc="UTF-8").encode("gb18030"),
        "charset_neither": b'<?xml version="1.0"?><Notify>\xff\xff\xff\x80</Notify>',
        "sn_too_long": _manscdp("Keepalive").replace("<SN>1</SN>", "<SN>" + "9" * 100 + "</SN>").encode(),
        "alarm_for_another_devices_channel": _manscdp(
            "Alarm", "<AlarmMethod>5</AlarmMethod><AlarmType>6</AlarmType>"
            "<AlarmTime>2026-12-07T10:00:00</AlarmTime>", device=OTHER_CAMERA,
        ).encode(),
    }  # fmt: skip
    return [Case(name, _request(peer, "MESSAGE", GOOD, body), peer)
            for name, body in bodies.items()]  # fmt: skip


def _spoof_cases(good: Peer, spoofer: Peer) -> list[Case]:
    keepalive = _manscdp("Keepalive").encode()
    other = _manscdp("Keepalive", device=OTHER).encode()
    forged = (f'Digest username="{GOOD}", realm="{REALM}", nonce="n", uri="sip:x",'
              ' response="00000000000000000000000000000000"')  # fmt: skip

    def replayed() -> None:  # the CSeq of its accepted REGISTER, in a new transaction
        good.send(serialize(good.request("REGISTER", GOOD, call_id=f"reg-{GOOD}-{good.port}",
                                         cseq=1, headers=[("Authorization", forged)])))  # fmt: skip

    return [
        Case("spoof_registered_id_from_elsewhere",
             _request(spoofer, "MESSAGE", GOOD, keepalive), spoofer),
        Case("spoof_other_registered_id_from_elsewhere",
             _request(spoofer, "MESSAGE", OTHER, other), spoofer),
        Case("unregistered_id",
             _request(spoofer, "MESSAGE", "44031100001320000077", keepalive), spoofer),
        Case("unregistered_notify",
             _request(spoofer, "NOTIFY", "44031100001320000078", keepalive), spoofer),
        Case("register_cseq_replayed", replayed, good),
    ]  # fmt: skip


def _tcp_cases(port: int) -> list[tuple[str, bytes]]:
    """Stream framing: no Content-Length on TCP, a lying one, an oversized message."""
    head = _head(port=port).replace("SIP/2.0/UDP", "SIP/2.0/TCP")
    return [
        ("tcp_missing_content_length", (head + "\r\n<Notify/>").encode()),
        ("tcp_content_length_text", (head + "Content-Length: x\r\n\r\n").encode()),
        ("tcp_oversized", (head + "Content-Length: 900000\r\n\r\n").encode() + b"a" * 70_000),
        ("tcp_garbage", bytes(range(256)) * 64 + b"\r\n\r\n"),
    ]


def _check(case: Case, good: Peer) -> None:
    before = counted()
    case.send()
    deadline = time.monotonic() + 5
    while counted() <= before:
        assert time.monotonic() < deadline, f"{case.name}: not counted"
        time.sleep(0.01)
    answer = case.peer.response(timeout=0.3)
    if answer is not None:
        allowed = 400 <= answer.status < 500 or (case.unknown_method and answer.status == 501)
        assert allowed, f"{case.name}: answered {answer.status}"
    assert good.keepalive(GOOD) == 200, f"the registered device stopped working after {case.name}"


def test_hostile_messages_are_refused_counted_and_harm_no_one(
    hub: int, admin: httpx.Client
) -> None:
    good, spoofer = Peer(hub, "127.0.0.1"), Peer(hub, "127.0.0.3")
    other = Peer(hub, "127.0.0.2")
    try:
        assert good.register(GOOD, register_device(admin, GOOD, {"gb_set_guard": False})) == 200
        assert other.register(OTHER, register_device(admin, OTHER)) == 200
        admin.post("/api/v1/cameras", json={"id": OTHER_CAMERA, "area": "440311",
                                            "stream_url": f"gb28181://{OTHER_CAMERA}",
                                            "tags": {"gb_device": OTHER}}).raise_for_status()  # fmt: skip
        cases = [*_parse_cases(spoofer, hub), *_method_cases(spoofer), *_digest_cases(spoofer),
                 *_xml_cases(good), *_spoof_cases(good, spoofer)]  # fmt: skip
        for case in cases:
            _check(case, good)
        for name, data in _tcp_cases(hub):
            before = counted()
            with socket.create_connection(("127.0.0.1", hub), timeout=5) as conn:
                conn.sendall(data)
                conn.settimeout(5)
                received = _drain(conn)
            assert counted() > before, f"{name}: not counted"
            assert not received.startswith(b"SIP/2.0 2"), name
            assert good.keepalive(GOOD) == 200, name
        assert len(cases) + len(_tcp_cases(hub)) >= 60
    finally:
        for peer in (good, spoofer, other):
            peer.close()


def _drain(conn: socket.socket) -> bytes:
    """What the hub says before it closes the connection (or 5 s pass)."""
    received = b""
    try:
        while chunk := conn.recv(65536):
            received += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return received


def test_a_flood_from_one_address_is_dropped_and_slows_no_one(
    hub: int, admin: httpx.Client
) -> None:
    good, flooder = Peer(hub, "127.0.0.1"), Peer(hub, "127.0.0.4")
    try:
        assert good.register(GOOD, register_device(admin, GOOD, {"gb_set_guard": False})) == 200
        before = counter("sb_gb_drops_total", reason="flood")
        junk = serialize(flooder.request("OPTIONS", "44031100001320000066"))
        slowest = 0.0
        for burst in range(40):  # 2,000 a second from one address (10 × its limit), for 1 s
            for _ in range(50):
                flooder.send(junk)
            if burst % 10 == 9:
                started = time.monotonic()
                assert good.keepalive(GOOD) == 200
                slowest = max(slowest, time.monotonic() - started)
            time.sleep(0.025)
        assert slowest < 0.5, f"a keepalive beside the flood took {slowest:.2f} s"
        deadline = time.monotonic() + 5
        while counter("sb_gb_drops_total", reason="flood") - before < 1000:
            assert time.monotonic() < deadline, "the flood was not dropped"
            time.sleep(0.05)
    finally:
        good.close()
        flooder.close()


def test_password_guessing_is_limited_per_source(hub: int, admin: httpx.Client) -> None:
    password = register_device(admin, GOOD, {"gb_set_guard": False})
    guesser, good = Peer(hub, "127.0.0.5"), Peer(hub, "127.0.0.1")
    try:
        statuses = [guesser.register(GOOD, f"guess-{n}") for n in range(24)]
        assert set(statuses) == {403}
        assert counter("sb_gb_registrations_total", outcome="failed", reason="auth_limited") >= 1
        # Even the right password is refused from that address for a while; not elsewhere.
        assert guesser.register(GOOD, password) == 403
        assert good.register(GOOD, password) == 200
        assert good.keepalive(GOOD) == 200
    finally:
        guesser.close()
        good.close()


def test_only_a_digest_register_moves_a_device_to_another_address(
    hub: int, admin: httpx.Client
) -> None:
    password = register_device(admin, GOOD, {"gb_set_guard": False})
    first, second = Peer(hub, "127.0.0.1"), Peer(hub, "127.0.0.6")
    try:
        assert first.register(GOOD, password) == 200
        same_ip = Peer(hub, "127.0.0.1")  # another port of the registered IP: accepted
        assert same_ip.keepalive(GOOD) == 200
        same_ip.close()
        assert second.keepalive(GOOD) == 403  # not from its registered IP
        assert second.register(GOOD, password) == 200  # moved, with its password
        assert second.keepalive(GOOD) == 200
        assert first.keepalive(GOOD) == 403
        unregister = second.register(GOOD, password, expires=0)
        assert unregister == 200
        assert second.keepalive(GOOD) == 403
    finally:
        first.close()
        second.close()


def test_gb28181_devices_come_in_by_csv_with_passwords_that_register(
    hub: int, admin: httpx.Client
) -> None:
    admin.post("/api/v1/areas", json={"code": "440311", "name": "龙华区"})
    csv = f"id,type,area\n{GOOD},gb28181,440311\n44031100009990000001,gb28181,440311\n"
    report = admin.post("/api/v1/devices/import", content=csv.encode(),
                        headers={"content-type": "text/csv"}).json()  # fmt: skip
    assert report["created"] == 1 and len(report["errors"]) == 1
    assert "type code 999" in str(report["errors"][0])
    password = report["credentials"][0]["password"]
    peer = Peer(hub)
    try:
        assert peer.register(GOOD, password) == 200
        rotated = admin.post(f"/api/v1/devices/{GOOD}/credentials").json()["password"]
        assert peer.register(GOOD, password) == 403
        assert peer.register(GOOD, rotated) == 200
    finally:
        peer.close()


def test_keepalives_count_bring_devices_back_and_are_refused_as_ever(
    hub: int, admin: httpx.Client, database_url: str
) -> None:
    """Plain keepalives, which the server reads on its quick path: each counted, the device
    online again after an outage (with `device_online`), and refused with the same reasons
    and counters when the device is not registered or not at its registered address."""
    password = register_device(admin, GOOD, {"gb_set_guard": False, "gb_heartbeat_s": 1})
    device, stranger = Peer(hub, "127.0.0.1"), Peer(hub, "127.0.0.7")
    try:
        assert device.register(GOOD, password) == 200
        heard = counter("sb_gb_keepalives_total")
        assert device.keepalive(GOOD) == 200
        assert counter("sb_gb_keepalives_total") == heard + 1
        eventually(lambda: _signal_sources(database_url, "device_offline"),
                   lambda found: GOOD in found, what="offline after 3 s of silence")  # fmt: skip
        assert device.keepalive(GOOD, sn=2) == 200
        eventually(lambda: _signal_sources(database_url, "device_online"),
                   lambda found: GOOD in found, what="device_online on its keepalive")  # fmt: skip
        state = eventually(lambda: admin.get(f"/api/v1/devices/{GOOD}").json()["state"],
                           lambda state: state["online"], what="online again")  # fmt: skip
        assert state["last_seen"]
        wrong, unknown = (counter("sb_gb_drops_total", reason=r)
                          for r in ("wrong_address", "not_registered"))  # fmt: skip
        assert stranger.keepalive(GOOD) == 403
        assert device.keepalive(OTHER) == 403
        assert counter("sb_gb_drops_total", reason="wrong_address") == wrong + 1
        assert counter("sb_gb_drops_total", reason="not_registered") == unknown + 1
        assert counter("sb_gb_keepalives_total") == heard + 2
    finally:
        device.close()
        stranger.close()


def _signal_sources(database_url: str, kind: str) -> list[str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT source_id FROM signals WHERE kind = %s", (kind,)).fetchall()
    return [r[0] for r in rows]
