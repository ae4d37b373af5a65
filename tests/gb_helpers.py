"""Helpers for the GB/T 28181 tests: the server in a thread, a device registered over the API,
and a small SIP peer on a UDP socket of its own."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from prometheus_client import REGISTRY

from gb28181.server import GbConfig, run_gb28181
from gb28181.sip import (
    FloodLimits,
    SipParseError,
    SipRequest,
    SipResponse,
    Timers,
    authorization_for,
    build_request,
    parse_message,
    serialize,
)
from gb28181.sip.message import new_branch
from hub.embedded import ports
from hub.supervisor import Probe
from tests.threads import in_background

HUB_ID = "44031100002000000001"
REALM = HUB_ID[:10]


def free_port() -> int:
    """A port free for both UDP and TCP on loopback right now (SIPp or the hub binds it next)."""
    return ports.free_port(udp=True)


@contextmanager
def gb_running(
    database_url: str,
    seal_key: bytes,
    *,
    flood: FloodLimits | None = None,
    timers: Timers | None = None,
    **config: Any,
) -> Iterator[int]:
    """The GB/T 28181 server on a free loopback port (yielded), in a thread of its own."""
    port = free_port()
    settings = GbConfig(
        database_url=database_url, host="127.0.0.1", port=port, hub_id=HUB_ID, realm=REALM,
        timezone="Asia/Shanghai", seal_key=seal_key, timers=timers or Timers(t1=0.1),
        flood=flood or FloodLimits(rate_per_s=10_000, burst=10_000), flush_s=0.1, sweep_s=0.5,
        **config,
    )  # fmt: skip
    probe = Probe("gb28181")
    with in_background(lambda: run_gb28181(settings, probe), lambda: probe.up, what="gb28181"):
        yield port


def register_device(admin: httpx.Client, device_id: str, tags: dict[str, Any] | None = None) -> str:
    """Register a gb28181 device in 440311 (created if missing); its digest password."""
    admin.post("/api/v1/areas", json={"code": "440311", "name": "龙华区"})
    answer = admin.post(
        "/api/v1/devices",
        json={"id": device_id, "type": "gb28181", "area": "440311", "tags": tags or {}},
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["credentials"]["password"])


def counted(
    names: tuple[str, ...] = ("sb_gb_drops", "sb_gb_registrations", "sb_gb_alarms"),
) -> float:
    """Everything the GB server refused or dropped so far, by its counters."""
    total = 0.0
    for metric in REGISTRY.collect():
        if metric.name not in names:
            continue
        for sample in metric.samples:
            if not sample.name.endswith("_total"):
                continue
            outcome = sample.labels.get("outcome")
            if outcome in ("ok", "stored", "duplicate"):
                continue
            total += sample.value
    return total


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Peer:
    """A SIP endpoint on its own UDP socket (bound to `ip`, any loopback address works)."""

    def __init__(self, hub_port: int, ip: str = "127.0.0.1") -> None:
        self.hub = ("127.0.0.1", hub_port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((ip, 0))
        self.ip, self.port = self.sock.getsockname()
        self.cseq = 0

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendto(data, self.hub)

    def recv(self, timeout: float = 3.0) -> SipResponse | SipRequest | None:
        self.sock.settimeout(timeout)
        try:
            data, _ = self.sock.recvfrom(65536)
        except TimeoutError:
            return None
        try:
            return parse_message(data)
        except SipParseError:
            # The hub's 400 to a broken request echoes what was broken (a bad CSeq): its status
            # line is what counts.
            first = data.split(b"\r\n", 1)[0].decode(errors="replace").split(" ", 2)
            assert first[0] == "SIP/2.0" and first[1].isdigit(), data[:200]
            return SipResponse(int(first[1]), first[2] if len(first) > 2 else "")

    def response(self, timeout: float = 3.0) -> SipResponse | None:
        """The next response, answering (200) any request of the hub's on the way."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            got = self.recv(left)
            if isinstance(got, SipResponse) or got is None:
                return got
            self.answer(got)
        return None

    def expect(self, cmd_type: str, timeout: float = 10.0, method: str = "MESSAGE") -> SipRequest:
        """The hub's next `method` about `cmd_type` (answered 200, as the others on the way)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            got = self.recv(left)
            if isinstance(got, SipRequest):
                self.answer(got)
                if got.method == method and f"<CmdType>{cmd_type}</CmdType>".encode() in got.body:
                    return got
        raise AssertionError(f"the hub asked for no {cmd_type}")

    def answer(self, request: SipRequest) -> None:
        lines = [
            "SIP/2.0 200 OK",
            *(f"Via: {v}" for v in request.headers.get_all("Via")),
            f"From: {request.headers.get('From')}",
            f"To: {request.headers.get('To')};tag=peer",
            f"Call-ID: {request.call_id}",
            f"CSeq: {request.headers.get('CSeq')}",
            "Content-Length: 0",
        ]
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode())

    def request(
        self, method: str, user: str, body: bytes = b"", *, headers: list[tuple[str, str]] | None = None,
        call_id: str | None = None, cseq: int | None = None,
    ) -> SipRequest:  # fmt: skip
        self.cseq += 1
        uri = f"sip:{HUB_ID}@127.0.0.1:{self.hub[1]}"
        to = f"<sip:{user}@{REALM}>" if method == "REGISTER" else f"<sip:{HUB_ID}@{REALM}>"
        req = build_request(
            method, uri, from_=f"<sip:{user}@{REALM}>", to=to, call_id=call_id,
            cseq=self.cseq if cseq is None else cseq, headers=headers or [], body=body,
            content_type="Application/MANSCDP+xml" if body else None,
        )  # fmt: skip
        via = f"SIP/2.0/UDP {self.ip}:{self.port};rport;branch={new_branch()}"
        req.headers.add("Via", via, first=True)
        return req

    def ask(self, req: SipRequest, timeout: float = 3.0) -> SipResponse | None:
        """Send, retransmitting over UDP as a device does (Timer E: 0.5 s doubling)."""
        data, interval = serialize(req), 0.5
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.send(data)
            answer = self.response(min(interval, left))
            if answer is not None:
                return answer
            interval *= 2
        return None

    def register(self, user: str, password: str, expires: int = 3600) -> int:
        """401 then the digest answer; the final status."""
        call_id = f"reg-{user}-{self.port}"
        head = [("Contact", f"<sip:{user}@{self.ip}:{self.port}>"), ("Expires", str(expires))]
        first = self.ask(self.request("REGISTER", user, headers=head, call_id=call_id))
        if first is None:
            return 0
        if first.status != 401:
            return first.status
        challenge = first.headers.get("WWW-Authenticate") or ""
        uri = f"sip:{HUB_ID}@127.0.0.1:{self.hub[1]}"
        auth = authorization_for(challenge, "REGISTER", uri, user, password)
        final = self.ask(self.request("REGISTER", user, headers=[*head, ("Authorization", auth)],
                                      call_id=call_id))  # fmt: skip
        return final.status if final is not None else 0

    def keepalive(self, user: str, sn: int = 1) -> int | None:
        body = (
            f'<?xml version="1.0" encoding="GB2312"?><Notify><CmdType>Keepalive</CmdType>'
            f"<SN>{sn}</SN><DeviceID>{user}</DeviceID><Status>OK</Status></Notify>"
        ).encode()
        answer = self.ask(self.request("MESSAGE", user, body))
        return answer.status if answer else None
