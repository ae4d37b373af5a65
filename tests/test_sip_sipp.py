"""The SIP core against SIPp (Debian's sip-tester) as the outside peer, over UDP and TCP:
OPTIONS and MESSAGE answered; REGISTER challenged and SIPp's digest answer verified (qop=auth
and the RFC 2069 form), a wrong password refused; and the stack's own MESSAGE answered by a
SIPp UAS. Scenarios in tests/sipp/core_*.xml."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from gb28181.sip import (
    Address,
    IncomingRequest,
    NonceIssuer,
    SipTransportError,
    build_request,
    challenge,
    parse_authorization,
    verify,
)
from tests.gb_helpers import free_port
from tests.sip_helpers import running_stack

SIPP = shutil.which("sipp") or "/usr/bin/sipp"
SCENARIOS = Path(__file__).parent / "sipp"
REALM = "3402000000"
USER = "34020000001320000001"
PASSWORD = "s3cret-pw"

pytestmark = pytest.mark.skipif(
    not Path(SIPP).exists(), reason="sipp is not installed (apt-get install sip-tester)"
)
TRANSPORTS = [("udp", "u1"), ("tcp", "t1")]


async def sipp(cwd: Path, scenario: str, *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        SIPP,
        "-sf",
        str(SCENARIOS / scenario),
        "-m",
        "1",
        "-i",
        "127.0.0.1",
        "-nostdin",
        "-timeout",
        "20s",
        "-timeout_error",
        "-trace_err",
        *args,
        cwd=cwd,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    return proc.returncode or 0, err.decode(errors="replace") + error_logs(cwd)


def error_logs(cwd: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in cwd.glob("*_errors.log"))


@pytest.mark.parametrize(("transport", "mode"), TRANSPORTS)
async def test_sipp_options_and_message(tmp_path: Path, transport: str, mode: str) -> None:
    seen: list[tuple[str, str, bytes]] = []

    async def handler(incoming: IncomingRequest) -> None:
        seen.append((incoming.request.method, incoming.source.transport, incoming.request.body))
        await incoming.respond(200)

    async with running_stack(handler) as stack:
        rc, log = await sipp(
            tmp_path, "core_options_message.xml", "-t", mode, f"127.0.0.1:{stack.port}"
        )
    assert rc == 0, log
    assert [(m, t) for m, t, _ in seen] == [("OPTIONS", transport), ("MESSAGE", transport)]
    assert b"<CmdType>Keepalive</CmdType>" in seen[1][2]
    assert sum(stack.drops.values()) == 0, stack.drops


@pytest.mark.parametrize("qop", ["auth", None])
@pytest.mark.parametrize(("transport", "mode"), TRANSPORTS)
@pytest.mark.parametrize("password", [PASSWORD, "wrong"])
async def test_sipp_register_digest(
    tmp_path: Path, transport: str, mode: str, qop: str | None, password: str
) -> None:
    nonces = NonceIssuer()
    verdicts: list[bool] = []

    async def registrar(incoming: IncomingRequest) -> None:
        request = incoming.request
        value = request.headers.get("Authorization")
        if value is None:
            www = challenge(REALM, nonces.issue(), qop=qop)
            await incoming.respond(401, headers=[("WWW-Authenticate", www)])
            return
        creds = parse_authorization(value)
        # (SIPp puts sip:host:port in uri for a REGISTER, not the Request-URI: devices vary too.)
        assert creds.qop == qop and creds.realm == REALM
        ok = (
            nonces.check(creds.nonce) == "ok"
            and creds.username == USER
            and verify(creds, request.method, PASSWORD)
        )
        verdicts.append(ok)
        await incoming.respond(200 if ok else 403)

    async with running_stack(registrar) as stack:
        rc, log = await sipp(
            tmp_path,
            "core_register_digest.xml",
            "-t",
            mode,
            "-au",
            USER,
            "-ap",
            password,
            f"127.0.0.1:{stack.port}",
        )
    right = password == PASSWORD
    assert verdicts == [right]
    assert (rc == 0) == right, log


@pytest.mark.parametrize(("transport", "mode"), TRANSPORTS)
async def test_stack_request_answered_by_sipp(tmp_path: Path, transport: str, mode: str) -> None:
    port = free_port()
    uas = asyncio.create_task(sipp(tmp_path, "core_uas_message.xml", "-t", mode, "-p", str(port)))
    dest = Address(transport, "127.0.0.1", port)  # type: ignore[arg-type]
    async with running_stack() as stack:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while True:
            request = build_request(
                "MESSAGE",
                f"sip:{USER}@127.0.0.1:{port}",
                from_=f"<sip:34020000002000000001@{REALM}>",
                to=f"<sip:{USER}@{REALM}>",
                body=b"<Query/>",
                content_type="Application/MANSCDP+xml",
            )
            try:
                response = await stack.request(request, dest)
                break
            except SipTransportError:  # SIPp not listening yet (TCP)
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.1)
    assert response.status == 200 and response.to.tag
    rc, log = await uas
    assert rc == 0, log
