"""HTTP Digest authentication for SIP (RFC 2617 / RFC 3261 22.4), MD5 only.

Server side: `challenge` writes WWW-Authenticate, `parse_authorization` reads Authorization
strictly (SipParseError("bad_digest") on anything malformed, never another exception),
`verify` checks the response with qop=auth or, for devices of the RFC 2069 era, without qop.
Nonces come from `NonceIssuer`: stateless (an HMAC over the issue time), so nothing is kept per
challenge and a flood of unauthenticated REGISTERs costs no memory.

Client side: `parse_challenge` and `authorization_for` answer a 401 from an upper platform.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import struct
import time
from dataclasses import dataclass
from typing import Literal

from gb28181.sip.message import SipParseError

MAX_HEADER_CHARS = 2048
_PARAM_RE = re.compile(r'\s*([A-Za-z0-9\-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,"]+)\s*(,|$)')
_HEX32 = re.compile(r"[0-9a-fA-F]{32}")
_NC = re.compile(r"[0-9a-fA-F]{8}")
_SAFE_VALUE = re.compile(r"[^\x00-\x1f\x7f]{0,512}")


@dataclass(frozen=True)
class DigestCredentials:
    """An Authorization header's Digest fields (qop, cnonce and nc together or not at all)."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str = "MD5"
    qop: str | None = None
    cnonce: str | None = None
    nc: str | None = None
    opaque: str | None = None


@dataclass(frozen=True)
class DigestChallenge:
    """A WWW-Authenticate header's Digest fields."""

    realm: str
    nonce: str
    qop: tuple[str, ...] = ()
    algorithm: str = "MD5"
    opaque: str | None = None
    stale: bool = False


def _params(value: str, scheme_required: str = "digest") -> dict[str, str]:
    if len(value) > MAX_HEADER_CHARS:
        raise SipParseError("bad_digest", "too long")
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != scheme_required:
        raise SipParseError("bad_digest", "not Digest")
    out: dict[str, str] = {}
    pos = 0
    rest = rest.strip()
    while pos < len(rest):
        m = _PARAM_RE.match(rest, pos)
        if m is None or m.end() == pos:
            raise SipParseError("bad_digest", "malformed parameters")
        name, raw = m.group(1).lower(), m.group(2)
        if raw.startswith('"'):
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        if name in out:
            raise SipParseError("bad_digest", f"{name} twice")
        if not _SAFE_VALUE.fullmatch(raw):
            raise SipParseError("bad_digest", f"bad {name}")
        out[name] = raw
        pos = m.end()
        if m.group(3) == "" and pos < len(rest):
            raise SipParseError("bad_digest", "malformed parameters")
    return out


def parse_authorization(value: str) -> DigestCredentials:
    """An Authorization (or Proxy-Authorization) value. Raises SipParseError("bad_digest")."""
    p = _params(value)
    for name in ("username", "realm", "nonce", "uri", "response"):
        if not p.get(name) and not (name in p and name == "realm"):
            raise SipParseError("bad_digest", f"no {name}")
    if not _HEX32.fullmatch(p["response"]):
        raise SipParseError("bad_digest", "response is not 32 hex digits")
    algorithm = p.get("algorithm", "MD5")
    if algorithm.upper() != "MD5":
        raise SipParseError("bad_digest", "algorithm is not MD5")
    qop = p.get("qop")
    if qop is not None:
        if qop.lower() != "auth":
            raise SipParseError("bad_digest", "qop is not auth")
        if not p.get("cnonce") or not _NC.fullmatch(p.get("nc", "")):
            raise SipParseError("bad_digest", "qop=auth without cnonce and nc")
    elif "cnonce" in p or "nc" in p:
        raise SipParseError("bad_digest", "cnonce or nc without qop")
    return DigestCredentials(
        username=p["username"],
        realm=p["realm"],
        nonce=p["nonce"],
        uri=p["uri"],
        response=p["response"].lower(),
        algorithm="MD5",
        qop=None if qop is None else "auth",
        cnonce=p.get("cnonce"),
        nc=p.get("nc"),
        opaque=p.get("opaque"),
    )


def parse_challenge(value: str) -> DigestChallenge:
    """A WWW-Authenticate (or Proxy-Authenticate) value. Raises SipParseError("bad_digest")."""
    p = _params(value)
    if "realm" not in p or not p.get("nonce"):
        raise SipParseError("bad_digest", "no realm or nonce")
    algorithm = p.get("algorithm", "MD5")
    if algorithm.upper() != "MD5":
        raise SipParseError("bad_digest", "algorithm is not MD5")
    qop = tuple(q.strip().lower() for q in p["qop"].split(",")) if "qop" in p else ()
    return DigestChallenge(
        realm=p["realm"],
        nonce=p["nonce"],
        qop=qop,
        algorithm="MD5",
        opaque=p.get("opaque"),
        stale=p.get("stale", "").lower() == "true",
    )


def _quote(value: str) -> str:
    if not _SAFE_VALUE.fullmatch(value):
        raise ValueError("control character in a digest field")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def challenge(
    realm: str,
    nonce: str,
    qop: str | None = "auth",
    algorithm: str = "MD5",
    *,
    opaque: str | None = None,
    stale: bool = False,
) -> str:
    """A WWW-Authenticate value: `Digest realm="..", nonce="..", qop="auth", algorithm=MD5`."""
    parts = [f"realm={_quote(realm)}", f"nonce={_quote(nonce)}"]
    if opaque is not None:
        parts.append(f"opaque={_quote(opaque)}")
    if stale:
        parts.append("stale=true")
    if qop is not None:
        parts.append(f"qop={_quote(qop)}")
    parts.append(f"algorithm={algorithm}")
    return "Digest " + ", ".join(parts)


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def ha1(username: str, realm: str, password: str) -> str:
    """MD5(username:realm:password), what a registrar may store instead of the password."""
    return _md5(f"{username}:{realm}:{password}")


def compute_response(
    ha1_hex: str,
    method: str,
    uri: str,
    nonce: str,
    *,
    qop: str | None = None,
    cnonce: str | None = None,
    nc: str | None = None,
) -> str:
    ha2 = _md5(f"{method}:{uri}")
    if qop is None:
        return _md5(f"{ha1_hex}:{nonce}:{ha2}")
    return _md5(f"{ha1_hex}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


def verify(
    credentials: DigestCredentials,
    method: str,
    password: str | None = None,
    *,
    ha1_hex: str | None = None,
) -> bool:
    """True when `credentials` answer correctly for `method` with this password (or HA1).

    Checks only the digest arithmetic: the caller checks the nonce (`NonceIssuer.check`), that
    realm and username are the expected ones, and that `uri` fits the Request-URI if it cares."""
    if ha1_hex is None:
        if password is None:
            raise ValueError("password or ha1_hex required")
        ha1_hex = ha1(credentials.username, credentials.realm, password)
    expected = compute_response(
        ha1_hex,
        method,
        credentials.uri,
        credentials.nonce,
        qop=credentials.qop,
        cnonce=credentials.cnonce,
        nc=credentials.nc,
    )
    return hmac.compare_digest(expected, credentials.response)


def authorization_for(
    challenge_header: str,
    method: str,
    uri: str,
    username: str,
    password: str,
    *,
    cnonce: str | None = None,
    nc: int = 1,
) -> str:
    """The Authorization value answering a WWW-Authenticate `challenge_header` (client side).
    qop=auth when the challenge offers it, else the RFC 2069 form."""
    ch = parse_challenge(challenge_header)
    key = ha1(username, ch.realm, password)
    parts = [
        f"username={_quote(username)}",
        f"realm={_quote(ch.realm)}",
        f"nonce={_quote(ch.nonce)}",
        f"uri={_quote(uri)}",
    ]
    if "auth" in ch.qop:
        cn = cnonce or secrets.token_hex(8)
        nc_text = f"{nc:08x}"
        response = compute_response(key, method, uri, ch.nonce, qop="auth", cnonce=cn, nc=nc_text)
        parts += [
            f"response={_quote(response)}",
            "qop=auth",
            f"cnonce={_quote(cn)}",
            f"nc={nc_text}",
        ]
    else:
        parts.append(f"response={_quote(compute_response(key, method, uri, ch.nonce))}")
    parts.append("algorithm=MD5")
    if ch.opaque is not None:
        parts.append(f"opaque={_quote(ch.opaque)}")
    return "Digest " + ", ".join(parts)


NonceStatus = Literal["ok", "stale", "invalid"]


class NonceIssuer:
    """Stateless nonces: base64url(issue time, 8 random bytes, HMAC-SHA256 of both, cut to 16).

    `check` says "ok" while a nonce is younger than `ttl_s`, "stale" after (answer a new 401
    with stale=true: the device retries without asking its user), "invalid" when it was not
    ours. A nonce may be replayed within its lifetime; the digest still binds it to the method
    and URI, and `ttl_s` bounds the window."""

    def __init__(self, secret: bytes | None = None, ttl_s: float = 300.0) -> None:
        self._secret = secret or secrets.token_bytes(32)
        self.ttl_s = ttl_s

    def issue(self, now: float | None = None) -> str:
        stamp = struct.pack("!Q", int((time.time() if now is None else now) * 1000))
        body = stamp + secrets.token_bytes(8)
        mac = hmac.new(self._secret, body, hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(body + mac).decode().rstrip("=")

    def check(self, nonce: str, now: float | None = None) -> NonceStatus:
        if len(nonce) != 43:
            return "invalid"
        try:
            raw = base64.urlsafe_b64decode(nonce + "=")
        except (ValueError, TypeError):
            return "invalid"
        if len(raw) != 32:
            return "invalid"
        body, mac = raw[:16], raw[16:]
        if not hmac.compare_digest(mac, hmac.new(self._secret, body, hashlib.sha256).digest()[:16]):
            return "invalid"
        issued = struct.unpack("!Q", body[:8])[0] / 1000
        age = (time.time() if now is None else now) - issued
        return "ok" if -5.0 <= age <= self.ttl_s else "stale"
