"""One uplink's registration: REGISTER with digest (username = our local_id), refreshed before
it expires (at 80% of the expiry the upper's 200 granted, never more than asked), keepalives at
the interval; three unanswered keepalives, a 403/404 or the upper forgetting us (it restarted)
→ register again, with backoff between failed tries. The upper's `Date` in its 200 gives the
clock offset alarms are stamped with."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from gb28181.cascade.store import UplinkConfig
from gb28181.sip import (
    SipResponse,
    SipStack,
    SipTimeout,
    SipTransportError,
    authorization_for,
    build_request,
)
from gb28181.sip.message import new_call_id
from gb28181.sip.transport import Address
from hub.backoff import Backoff
from hub.logs import get_logger

log = get_logger(__name__)

MANSCDP_TYPE = "Application/MANSCDP+xml"
SKEW_WARN = timedelta(seconds=3)
MISSED_KEEPALIVES = 3


class UplinkSession:
    """Runs one uplink until cancelled; `on_change` is awaited after each change of state."""

    def __init__(
        self,
        config: UplinkConfig,
        stack: SipStack,
        tz: ZoneInfo,
        on_change: Callable[[UplinkSession], Awaitable[None]],
        *,
        backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
    ) -> None:
        self.config = config
        self.stack = stack
        self.tz = tz
        self.on_change = on_change
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.address = Address(
            "tcp" if config.transport == "tcp" else "udp", config.host, config.port
        )
        self.registered = False
        self.last_error: str | None = None
        self.registered_at: datetime | None = None
        self.granted_s = config.expires_s  # the expiry the upper's last 200 granted
        self.last_keepalive: datetime | None = None
        self.skew = timedelta(0)
        self.skew_ms: int | None = None
        self.call_id = new_call_id()
        self._cseq = itertools.count(1)
        self._sn = itertools.count(1)
        self.lost = asyncio.Event()  # the upper said it does not know us: register again

    @property
    def local_domain(self) -> str:
        return self.config.local_id[:10]

    def next_sn(self) -> int:
        return next(self._sn)

    # --- the loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        retries = Backoff(first_s=self.backoff_s, max_s=self.max_backoff_s).retries()
        while True:
            if await self.register():
                retries.succeeded()
                await self._keep_alive()
            else:
                await retries.wait()

    async def _keep_alive(self) -> None:
        """Keepalives until the registration must be refreshed or is lost."""
        refresh_at = asyncio.get_running_loop().time() + self.granted_s * 0.8
        missed = 0
        self.lost.clear()
        while missed < MISSED_KEEPALIVES:
            left = refresh_at - asyncio.get_running_loop().time()
            if left <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.lost.wait(), min(self.config.keepalive_s, left))
            if self.lost.is_set():
                await self._lose("the upper platform no longer knows us")
                return
            if asyncio.get_running_loop().time() >= refresh_at:
                return
            answer = await self.keepalive()
            if answer is not None and answer.status == 200:
                missed = 0
                self.last_keepalive = datetime.now(UTC)
                await self.on_change(self)
            elif answer is not None and answer.status in (403, 404, 401):
                await self._lose(f"keepalive answered {answer.status}")
                return
            else:
                missed += 1
        await self._lose(f"{MISSED_KEEPALIVES} keepalives unanswered")

    async def _lose(self, why: str) -> None:
        self.registered = False
        self.last_error = why
        log.warning("gb uplink lost", uplink=self.config.id, reason=why)
        await self.on_change(self)

    # --- requests ----------------------------------------------------------------------------

    def _contact_host(self) -> str:
        host = self.stack.advertise_host or self.stack.host
        if host not in ("0.0.0.0", "::", ""):  # noqa: S104  (comparing, not binding)
            return host
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.connect((self.config.host, self.config.port))
                return str(probe.getsockname()[0])
            except OSError:
                return "127.0.0.1"

    def _register_request(
        self, expires: int, auth: str | None
    ) -> tuple[str, list[tuple[str, str]]]:
        uri = f"sip:{self.config.upper_id}@{self.config.upper_domain}"
        headers = [
            ("Contact", f"<sip:{self.config.local_id}@{self._contact_host()}:{self.stack.port}>"),
            ("Expires", str(expires)),
            ("X-GB-Ver", "3.0"),
        ]
        if auth is not None:
            headers.append(("Authorization", auth))
        return uri, headers

    async def _send(
        self, method: str, uri: str, headers: list[tuple[str, str]], body: bytes = b""
    ) -> SipResponse | None:
        me = f"<sip:{self.config.local_id}@{self.local_domain}>"
        to = (
            me
            if method == "REGISTER"
            else (f"<sip:{self.config.upper_id}@{self.config.upper_domain}>")
        )
        request = build_request(
            method,
            uri,
            from_=me,
            to=to,
            call_id=self.call_id if method == "REGISTER" else None,
            cseq=next(self._cseq) if method == "REGISTER" else 1,
            headers=headers,
            body=body,
            content_type=MANSCDP_TYPE if body else None,
        )
        try:
            return await self.stack.request(request, self.address)
        except (SipTimeout, SipTransportError) as exc:
            self.last_error = f"no answer from {self.address.host}:{self.address.port} ({exc})"
            return None

    async def register(self, expires: int | None = None) -> bool:
        """REGISTER, answering one challenge; whether the upper said 200."""
        expires = self.config.expires_s if expires is None else expires
        uri, headers = self._register_request(expires, None)
        answer = await self._send("REGISTER", uri, headers)
        if answer is not None and answer.status in (401, 407):
            name = "WWW-Authenticate" if answer.status == 401 else "Proxy-Authenticate"
            challenge = answer.headers.get(name) or ""
            try:
                auth = authorization_for(
                    challenge, "REGISTER", uri, self.config.local_id, self.config.password
                )
            except ValueError as exc:
                answer, self.last_error = None, f"the upper's challenge is unreadable: {exc}"
            else:
                uri, headers = self._register_request(expires, auth)
                answer = await self._send("REGISTER", uri, headers)
        ok = answer is not None and answer.status == 200
        if answer is not None and not ok:
            self.last_error = f"REGISTER answered {answer.status} {answer.reason}".strip()
        if ok and answer is not None:
            self._registered(answer)
        else:
            self.registered = False
            log.warning("gb uplink register failed", uplink=self.config.id, error=self.last_error)
        await self.on_change(self)
        return ok

    def _registered(self, answer: SipResponse) -> None:
        now = datetime.now(UTC)
        self.registered, self.registered_at, self.last_error = True, now, None
        self.lost.clear()
        self.granted_s = _granted(answer, self.config.expires_s)
        date = answer.headers.get("Date")
        theirs = _read_date(date, self.tz) if date else None
        if theirs is None:
            return
        self.skew = theirs - now
        self.skew_ms = int(self.skew.total_seconds() * 1000)
        if abs(self.skew) > SKEW_WARN:
            log.warning("gb uplink clock differs", uplink=self.config.id, skew_ms=self.skew_ms)

    async def keepalive(self) -> SipResponse | None:
        body = (
            f'<?xml version="1.0" encoding="GB2312"?>\r\n<Notify>\r\n<CmdType>Keepalive</CmdType>'
            f"\r\n<SN>{self.next_sn()}</SN>\r\n<DeviceID>{self.config.local_id}</DeviceID>\r\n"
            "<Status>OK</Status>\r\n</Notify>\r\n"
        ).encode()
        return await self.message(body)

    async def message(self, body: bytes) -> SipResponse | None:
        uri = f"sip:{self.config.upper_id}@{self.config.host}:{self.config.port}"
        return await self._send("MESSAGE", uri, [], body)


def _granted(answer: SipResponse, asked: int) -> int:
    """The expiry a 200 to REGISTER grants: a registrar may shorten what was asked, never
    lengthen it; without a readable Expires, what was asked."""
    text = (answer.headers.get("Expires") or "").strip()
    if not (text.isdigit() and len(text) < 8) or int(text) == 0:
        return asked
    return min(int(text), asked)


def _read_date(text: str, tz: ZoneInfo) -> datetime | None:
    """GB `YYYY-MM-DDTHH:MM:SS.mmm` (local time), or an RFC 1123 date."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            value = parsedate_to_datetime(text.strip())
        except (TypeError, ValueError):
            return None
    return value.replace(tzinfo=tz) if value.tzinfo is None else value
