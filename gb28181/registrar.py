"""REGISTER: digest-authenticated, with the GB `Date` header so devices set their clocks.

No credentials: 401 with a fresh nonce. A wrong password or an unknown id: 403, no second
challenge, counted per reason and per source address (past the failed-auth limit a source
gets 403 at once), never logged with the password. A stale nonce: 401 stale=true.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from api.auth_limit import FailedAuthentications
from devices.registry import DeviceRef
from gb28181 import metrics
from gb28181.sip import (
    IncomingRequest,
    NonceIssuer,
    SipParseError,
    challenge,
    parse_authorization,
    verify,
)
from gb28181.sip.transport import Address
from hub.errors import TooManyRequests
from hub.logs import get_logger

log = get_logger(__name__)

PasswordLookup = Callable[[str], Awaitable[tuple[DeviceRef, str] | None]]
MIN_EXPIRES, MAX_EXPIRES, DEFAULT_EXPIRES = 60, 86_400, 3600
GB_VERSIONS = ("2.0", "3.0")


@dataclass(frozen=True, slots=True)
class Registered:
    """A REGISTER that passed: who, from where, for how long (0: leaving)."""

    device: DeviceRef
    address: Address
    expires: int
    gb_version: str | None


def gb_date(now: datetime, tz: ZoneInfo) -> str:
    """`YYYY-MM-DDTHH:MM:SS.mmm` in local time, the form GB devices read."""
    local = now.astimezone(tz)
    return local.strftime("%Y-%m-%dT%H:%M:%S.") + f"{local.microsecond // 1000:03d}"


def requested_expires(inc: IncomingRequest) -> int:
    """Expires header, or the Contact's expires parameter; clamped to sane bounds."""
    text = inc.request.headers.get("Expires")
    if text is None:
        contact = inc.request.headers.get("Contact") or ""
        for part in contact.split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.lower() == "expires":
                text = value
    if text is None or not text.strip().isdigit():
        return DEFAULT_EXPIRES
    seconds = int(text.strip()[:9])
    return 0 if seconds == 0 else max(MIN_EXPIRES, min(MAX_EXPIRES, seconds))


class Registrar:
    def __init__(
        self, realm: str, tz: ZoneInfo, lookup: PasswordLookup, *, failure_limit: int = 20
    ) -> None:
        self.realm = realm
        self.tz = tz
        self.lookup = lookup
        self.nonces = NonceIssuer()
        self.failures = FailedAuthentications(limit=failure_limit)
        # Per device, the Call-ID and CSeq of its last accepted REGISTER (RFC 3261 10.3.7).
        self.last_cseq: dict[str, tuple[str, int]] = {}

    async def handle(self, inc: IncomingRequest) -> Registered | None:
        """Answer the REGISTER; the registration when it passed."""
        try:
            self.failures.check(inc.source.host)
        except TooManyRequests:
            await self._refuse(inc, "auth_limited", 403)
            return None
        version = self._version(inc)
        auth = inc.request.headers.get("Authorization")
        if auth is None:
            await self._challenge(inc, stale=False)
            return None
        try:
            creds = parse_authorization(auth)
        except SipParseError:
            await self._refuse(inc, "bad_authorization", 400, failed=True)
            return None
        user = inc.request.from_.uri.user or ""
        if creds.username != user or creds.realm != self.realm:
            await self._refuse(inc, "wrong_realm_or_user", 403, failed=True)
            return None
        nonce = self.nonces.check(creds.nonce)
        if nonce != "ok":
            await self._challenge(inc, stale=nonce == "stale")
            return None
        if self._out_of_order(user, inc):
            await self._refuse(inc, "cseq_out_of_order", 400)
            return None
        found = await self.lookup(user)
        if found is None:
            await self._refuse(inc, "unknown_device", 403, failed=True)
            return None
        device, password = found
        if not verify(creds, "REGISTER", password):
            await self._refuse(inc, "wrong_password", 403, failed=True)
            return None
        expires = requested_expires(inc)
        self.last_cseq[user] = (inc.request.call_id, inc.request.cseq.seq)
        await self._accept(inc, expires, version)
        metrics.registered("ok", "unregister" if expires == 0 else "")
        return Registered(device, inc.source, expires, version)

    def _out_of_order(self, user: str, inc: IncomingRequest) -> bool:
        """A REGISTER of the Call-ID last accepted with a CSeq not above that one's: an old
        request replayed or reordered (retransmissions never get here: the transaction
        answers them)."""
        last = self.last_cseq.get(user)
        return (
            last is not None
            and last[0] == inc.request.call_id
            and (inc.request.cseq.seq <= last[1])
        )

    def _version(self, inc: IncomingRequest) -> str | None:
        value = (inc.request.headers.get("X-GB-Ver") or "").strip()
        return value if value in GB_VERSIONS else None

    async def _challenge(self, inc: IncomingRequest, *, stale: bool) -> None:
        value = challenge(self.realm, self.nonces.issue(), stale=stale)
        await inc.respond(401, "Unauthorized", [("WWW-Authenticate", value)])
        metrics.registered("challenged", "stale" if stale else "")

    async def _refuse(
        self, inc: IncomingRequest, reason: str, status: int, *, failed: bool = False
    ) -> None:
        if failed:
            self.failures.failed(inc.source.host)
        metrics.registered("failed", reason)
        log.info(
            "gb register refused",
            reason=reason,
            source=inc.source.host,
            user=(inc.request.headers.get("From") or "")[:80],
        )
        await inc.respond(status)

    async def _accept(self, inc: IncomingRequest, expires: int, version: str | None) -> None:
        headers = [("Date", gb_date(datetime.now(UTC), self.tz)), ("Expires", str(expires))]
        contact = inc.request.headers.get("Contact")
        if contact:
            headers.append(("Contact", contact))
        if version:
            headers.append(("X-GB-Ver", version))
        await inc.respond(200, "OK", headers)


def expiry(now: datetime, expires: int) -> datetime:
    return now + timedelta(seconds=expires)
