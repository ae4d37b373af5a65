"""A quick path for the commonest request, a plain MESSAGE, that reads only what answering it
needs, straight from the bytes.

`quick_message` accepts a strict subset of what `parse_message` accepts: a MESSAGE with one
Via (UDP or TCP, IPv4 or a host name, z9hG4bK branch), From and To as `<sip:user@host[:port]>`
with parameters, Call-ID, CSeq, Content-Length, and at most Content-Type, Max-Forwards,
User-Agent, Date and X-GB-Ver beside them, each once, in printable ASCII. Anything else (another
header, a folded line, a display name, a list, a quoted parameter, a byte it is unsure of) gives
None, and the caller hands the message to the full parser, which accepts or refuses it with its
reasons and counters. What it accepts, the full parser accepts too and reads the same way, and
the answer it builds is byte for byte the one `make_response` would build (tests/test_sip_quick.py
checks both on generated and mangled messages). It costs less than half what the full parser
does, and the stack answers what it reads without a transaction object, a timer or a task.
"""

from __future__ import annotations

import re

from gb28181.sip.message import (
    BRANCH_COOKIE,
    DEFAULT_LIMITS,
    Limits,
    SipParseError,
    _render_params,
    parse_uri,
)

_VIA, _FROM, _TO, _CALL_ID, _CSEQ, _LENGTH, _MAX_FORWARDS, _TYPE, _UA, _DATE, _GB_VER = range(11)
# By lower-case name; _SPELLED has the usual spellings too, looked up before lowering.
_NAMES = {
    b"via": _VIA,
    b"v": _VIA,
    b"from": _FROM,
    b"f": _FROM,
    b"to": _TO,
    b"t": _TO,
    b"call-id": _CALL_ID,
    b"i": _CALL_ID,
    b"cseq": _CSEQ,
    b"content-length": _LENGTH,
    b"l": _LENGTH,
    b"max-forwards": _MAX_FORWARDS,
    b"content-type": _TYPE,
    b"c": _TYPE,
    b"user-agent": _UA,
    b"date": _DATE,
    b"x-gb-ver": _GB_VER,
}
_USUAL = b"Via From To Call-ID Call-Id CSeq Content-Length Max-Forwards Content-Type User-Agent"
_SPELLED = _NAMES | {name: _NAMES[name.lower()] for name in [*_USUAL.split(), b"Date", b"X-GB-Ver"]}
_REQUIRED = frozenset({_VIA, _FROM, _TO, _CALL_ID, _CSEQ, _LENGTH})

# The same character classes as message.py's, in bytes; the host is its _HOST_RE without the
# IPv6 form, the port 1 to 65535 without a leading zero (so that it is written back as it came).
_LABEL = rb"[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
_HOST = rb"(?:" + _LABEL + rb"\.)*" + _LABEL + rb"\.?"
_PORT = rb"(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
_PARAMS = rb"(?:;[A-Za-z0-9\-.!%*_+`'~]+(?:=[A-Za-z0-9\-.!%*_+`'~\[\]:/&$]+)?)*"
_START_RE = re.compile(rb"MESSAGE ([!-~]+) SIP/2\.0")
_VIA_RE = re.compile(
    rb"SIP/2\.0/(UDP|TCP) (" + _HOST + rb")(?::(" + _PORT + rb"))?(" + _PARAMS + rb")"
)
# From and To: <sip:user@host[:port]>;params, the user a GB/T 28181 ID or the like.
_ADDR_RE = re.compile(
    rb"<(sip:([A-Za-z0-9]{1,64})@" + _HOST + rb"(?::" + _PORT + rb")?)>(" + _PARAMS + rb")"
)
_CSEQ_RE = re.compile(rb"([0-9]{1,10}) MESSAGE")
_DIGITS_RE = re.compile(rb"[0-9]{1,10}")
_NOT_PLAIN_RE = re.compile(rb"[^\t\r\n\x20-\x7e]")  # printable ASCII; CR and LF checked apart

_good_uris: set[bytes] = set()  # Request-URIs parse_uri accepted: one per hub address, mostly


class QuickMessage:
    """What a quick-parsed MESSAGE says, as the full parser would read it."""

    __slots__ = (
        "body",
        "branch",
        "call_id",
        "cseq",
        "cseq_text",
        "from_text",
        "from_user",
        "to_params",
        "to_text",
        "to_uri",
        "to_user",
        "uri",
        "via_host",
        "via_params",
        "via_port",
        "via_text",
        "via_transport",
    )

    def __init__(self) -> None:
        self.body = b""
        self.uri = self.via_text = self.via_transport = self.via_host = self.branch = ""
        self.via_port: int | None = None
        self.via_params: dict[str, str | None] = {}
        self.from_text = self.from_user = self.to_text = self.to_uri = self.to_user = ""
        self.to_params: dict[str, str | None] = {}
        self.call_id = self.cseq_text = ""
        self.cseq = 0

    @property
    def sent_by(self) -> str:
        return f"{self.via_host}:{self.via_port or ''}"

    def server_key(self) -> tuple[str, ...]:
        """The key `transaction.server_key` gives the same request."""
        return ("3261", self.branch, self.sent_by, "MESSAGE", self.call_id, str(self.cseq))

    def response(
        self, status: int, reason: str, source: tuple[str, int], to_tag: str, server: str
    ) -> bytes:
        """The response `make_response` + `serialize` build, the top Via stamped with received
        and rport as the stack stamps it (RFC 3261 18.2.1, RFC 3581)."""
        source_host, source_port = source
        via = self.via_text
        if self.via_host != source_host or "rport" in self.via_params:
            params = dict(self.via_params)
            if self.via_host != source_host:
                params["received"] = source_host
            if "rport" in params:
                params["rport"] = str(source_port)
            port = f":{self.via_port}" if self.via_port is not None else ""
            via = f"SIP/2.0/{self.via_transport} {self.via_host}{port}{_render_params(params)}"
        to = self.to_text
        if status > 100 and self.to_params.get("tag") is None:
            to = f"<{self.to_uri}>{_render_params(self.to_params)};tag={to_tag}"
        return (
            f"SIP/2.0 {status} {reason}\r\nVia: {via}\r\nFrom: {self.from_text}\r\nTo: {to}\r\n"
            f"Call-ID: {self.call_id}\r\nCSeq: {self.cseq_text}\r\nServer: {server}\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()


def quick_message(data: bytes, limits: Limits = DEFAULT_LIMITS) -> QuickMessage | None:
    """The MESSAGE in `data`, or None when it is not of the plain form this path reads (the
    full parser then decides). Never raises."""
    if len(data) > limits.max_message_bytes or not data.startswith(b"MESSAGE "):
        return None
    end = data.find(b"\r\n\r\n", 0, limits.max_head_bytes + 4)
    if end < 0:
        return None
    head = data[:end]
    if _NOT_PLAIN_RE.search(head):
        return None
    lines = head.split(b"\r\n")
    if head.count(b"\r") != len(lines) - 1 or head.count(b"\n") != len(lines) - 1:
        return None
    if max(map(len, lines)) > limits.max_line_bytes:
        return None
    values = _header_values(lines)
    if values is None:
        return None
    msg = QuickMessage()
    if not (_request_line(msg, lines[0]) and _via(msg, values[_VIA])):
        return None
    if not (_addresses(msg, values[_FROM], values[_TO]) and _cseq(msg, values[_CSEQ])):
        return None
    forwards = values.get(_MAX_FORWARDS)
    if forwards is not None and not _DIGITS_RE.fullmatch(forwards):
        return None
    call_id, length = values[_CALL_ID], values[_LENGTH]
    if not call_id or not _DIGITS_RE.fullmatch(length) or len(length) > 9:
        return None
    size = int(length)
    rest = data[end + 4 :]
    if size > limits.max_body_bytes or len(rest) < size:
        return None
    msg.call_id = call_id.decode()
    msg.body = rest[:size]
    return msg


def _header_values(lines: list[bytes]) -> dict[int, bytes] | None:
    """Each known header's value (stripped), by slot; None for an unknown, folded or repeated
    header, or a required one missing."""
    values: dict[int, bytes] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        slot = _SPELLED.get(name)
        if slot is None:
            slot = _NAMES.get(name.rstrip(b" \t").lower()) if sep else None
        if slot is None or slot in values:
            return None
        values[slot] = value.strip(b" \t")
    if not values.keys() >= _REQUIRED:
        return None
    return values


def _request_line(msg: QuickMessage, line: bytes) -> bool:
    match = _START_RE.fullmatch(line)
    if match is None:
        return False
    uri = match.group(1)
    if uri not in _good_uris:
        try:
            parse_uri(uri.decode())
        except SipParseError:
            return False
        if len(_good_uris) < 256:  # a peer inventing URIs only costs itself the full check
            _good_uris.add(uri)
    msg.uri = uri.decode()
    return True


def _via(msg: QuickMessage, value: bytes) -> bool:
    match = _VIA_RE.fullmatch(value)
    if match is None:
        return False
    transport, host, port, param_text = match.groups()
    params = _params(param_text)
    branch = params.get("branch") if params is not None else None
    if params is None or branch is None or not branch.startswith(BRANCH_COOKIE):
        return False  # an RFC 2543 peer's request is matched otherwise: the full path's
    msg.via_text, msg.via_transport, msg.via_host = (
        value.decode(),
        transport.decode(),
        host.decode(),
    )
    msg.via_port = int(port) if port is not None else None
    msg.via_params, msg.branch = params, branch
    return True


def _addresses(msg: QuickMessage, from_value: bytes, to_value: bytes) -> bool:
    from_match = _ADDR_RE.fullmatch(from_value)
    to_match = _ADDR_RE.fullmatch(to_value)
    if from_match is None or to_match is None:
        return False
    from_params = from_match.group(3)
    if from_params.count(b";") > 1 and _params(from_params) is None:
        return False  # a parameter twice (one alone cannot repeat)
    to_params = _params(to_match.group(3))
    if to_params is None or ("tag" in to_params and to_params["tag"] is None):
        return False  # ";tag" without a value: the full path replaces it where it stands
    msg.from_text, msg.to_text = from_value.decode(), to_value.decode()
    msg.from_user = from_match.group(2).decode()
    msg.to_uri = to_match.group(1).decode()
    msg.to_user = to_match.group(2).decode()
    msg.to_params = to_params
    return True


def _cseq(msg: QuickMessage, value: bytes) -> bool:
    match = _CSEQ_RE.fullmatch(value)
    if match is None or int(match.group(1)) >= 2**31:
        return False
    msg.cseq, msg.cseq_text = int(match.group(1)), value.decode()
    return True


def _params(text: bytes) -> dict[str, str | None] | None:
    """`;a=b;c` (checked by the caller's pattern) as the full parser reads it: names lower
    case; None when a name repeats (which the full parser refuses)."""
    params: dict[str, str | None] = {}
    if not text:
        return params
    for part in text[1:].split(b";"):
        name, sep, value = part.partition(b"=")
        key = name.decode().lower()
        if key in params:
            return None
        params[key] = value.decode() if sep else None
    return params
