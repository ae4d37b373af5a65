"""SIP messages (RFC 3261 section 7): a strict parser with size limits, and the serializer.

`parse_message` takes one whole message (a UDP datagram, or a TCP frame cut by its
Content-Length) and either returns a request or a response whose mandatory headers are
present and well formed, or raises `SipParseError` with a reason from `PARSE_REASONS` (a
closed set, so a counter labelled by it stays small). Nothing else escapes it, whatever the
bytes. Header names are normalised (compact forms expanded, known names in their canonical
spelling) and list headers (Via, Contact, Route...) split into one entry per element, so a
message means the same whichever way the peer folded it.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import NamedTuple

SIP_VERSION = "SIP/2.0"
BRANCH_COOKIE = "z9hG4bK"

PARSE_REASONS = frozenset(
    {
        "message_too_large",  # more than Limits.max_message_bytes
        "headers_too_large",  # the head (start line + headers) past Limits.max_head_bytes
        "line_too_long",  # one line past Limits.max_line_bytes
        "too_many_headers",  # more than Limits.max_header_count entries
        "no_header_end",  # no empty line after the headers
        "bad_characters",  # control characters, bare CR/LF, bytes that are not UTF-8
        "bad_start_line",  # neither a request line nor a status line
        "bad_header",  # a header line without a colon or with a bad name
        "missing_header",  # Via, From, To, Call-ID or CSeq absent
        "duplicate_header",  # two of a header that may appear once
        "bad_content_length",  # not a number, or differing values
        "body_too_large",  # more than Limits.max_body_bytes
        "body_truncated",  # fewer bytes than Content-Length says
        "bad_uri",  # Request-URI, From, To or Contact not a sip/sips URI
        "bad_via",
        "bad_cseq",  # not "number METHOD", out of range, or not the request's method
        "bad_digest",  # a malformed Authorization / WWW-Authenticate (see digest.py)
    }
)


class SipParseError(ValueError):
    """A message (or header) that is not valid SIP. `reason` is one of PARSE_REASONS."""

    def __init__(self, reason: str, detail: str = "") -> None:
        assert reason in PARSE_REASONS, reason
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Limits:
    """Size limits that every message is held to before anything else looks at it.

    The defaults fit a GB/T 28181 catalog page (SumNum split over several MESSAGEs of a few KiB
    each) with a wide margin and keep one message's cost small and bounded."""

    max_message_bytes: int = 65536
    max_head_bytes: int = 16384
    max_line_bytes: int = 4096
    max_header_count: int = 64
    max_body_bytes: int = 65536


DEFAULT_LIMITS = Limits()

_COMPACT = {
    "i": "Call-ID",
    "m": "Contact",
    "e": "Content-Encoding",
    "l": "Content-Length",
    "c": "Content-Type",
    "f": "From",
    "s": "Subject",
    "k": "Supported",
    "t": "To",
    "v": "Via",
    "o": "Event",
    "u": "Allow-Events",
    "r": "Refer-To",
    "b": "Referred-By",
    "x": "Session-Expires",
}
_KNOWN = [
    "Accept",
    "Accept-Encoding",
    "Allow",
    "Allow-Events",
    "Authentication-Info",
    "Authorization",
    "Call-ID",
    "Contact",
    "Content-Encoding",
    "Content-Length",
    "Content-Type",
    "CSeq",
    "Date",
    "Event",
    "Expires",
    "From",
    "Max-Forwards",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Record-Route",
    "Require",
    "Retry-After",
    "Route",
    "Server",
    "Subject",
    "Subscription-State",
    "Supported",
    "Timestamp",
    "To",
    "Unsupported",
    "User-Agent",
    "Via",
    "Warning",
    "WWW-Authenticate",
    "X-GB-Ver",
]
_CANONICAL = {name.lower(): name for name in _KNOWN} | {k: v for k, v in _COMPACT.items()}
# Headers whose value is a comma-separated list of elements (RFC 3261 7.3.1); Contact: "*" too.
_LIST_HEADERS = frozenset(
    {"via", "contact", "route", "record-route", "allow", "supported", "require", "unsupported"}
)
_SINGLE_HEADERS = frozenset(
    {"call-id", "cseq", "from", "to", "content-length", "content-type", "max-forwards", "expires"}
)

_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_CTL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_HEAD_CTL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # CR and LF checked apart
_STATUS_RE = re.compile(r"SIP/2\.0 ([1-6][0-9][0-9]) ([^\x00-\x08\x0a-\x1f\x7f]*)")


_KEYS: dict[str, tuple[str, str]] = {}


def _key(name: str) -> tuple[str, str]:
    """(lookup key, canonical spelling) of a header name, memoised for the names seen often."""
    found = _KEYS.get(name)
    if found is None:
        canon = _CANONICAL.get(name.lower(), name)
        found = (canon.lower(), canon)
        if len(_KEYS) < 1024:  # hostile peers invent names without end
            _KEYS[name] = found
    return found


def canonical_name(name: str) -> str:
    """The canonical spelling of a header name (compact forms expanded)."""
    return _key(name)[1]


class Headers:
    """An ordered, case-insensitive multi-map of header names to values.

    Names are stored canonical (`canonical_name`); `get_all` returns one entry per element of a
    list header, in order. Values are checked on the way in: no control characters (a CR or LF
    would let whoever chose the value write headers of their own)."""

    __slots__ = ("_index", "_items")

    def __init__(self, items: list[tuple[str, str]] | None = None) -> None:
        self._items: list[tuple[str, str, str]] = []
        self._index: dict[str, list[str]] = {}
        for name, value in items or []:
            self.add(name, value)

    def get(self, name: str) -> str | None:
        """The first value of `name`, or None."""
        values = self._index.get(_key(name)[0])
        return values[0] if values else None

    def get_all(self, name: str) -> list[str]:
        return list(self._index.get(_key(name)[0], ()))

    def add(self, name: str, value: str, *, first: bool = False) -> None:
        """Appends `name: value` (or puts it before the others of its name when `first`)."""
        _check_header(name, value)
        key, canon = _key(name)
        if first and key in self._index:
            at = next(i for i, item in enumerate(self._items) if item[0] == key)
            self._items.insert(at, (key, canon, value))
            self._index[key].insert(0, value)
            return
        self._append(key, canon, value)

    def _append(self, key: str, canon: str, value: str) -> None:
        self._items.append((key, canon, value))
        values = self._index.get(key)
        if values is None:
            self._index[key] = [value]
        else:
            values.append(value)

    def set(self, name: str, value: str) -> None:
        """Replaces every value of `name` by one value, kept where the first one was."""
        _check_header(name, value)
        key, canon = _key(name)
        if key not in self._index:
            self._append(key, canon, value)
            return
        at = next(i for i, item in enumerate(self._items) if item[0] == key)
        rest = [item for item in self._items[at + 1 :] if item[0] != key]
        self._items[at:] = [(key, canon, value), *rest]
        self._index[key] = [value]

    def replace(self, name: str, values: list[str]) -> None:
        """Replaces every value of `name` by `values`, kept where the first one was."""
        for value in values:
            _check_header(name, value)
        key, canon = _key(name)
        at = next((i for i, item in enumerate(self._items) if item[0] == key), len(self._items))
        rest = [item for item in self._items[at:] if item[0] != key]
        self._items[at:] = [(key, canon, value) for value in values] + rest
        self._index[key] = list(values)
        if not values:
            del self._index[key]

    def remove(self, name: str) -> None:
        key = _key(name)[0]
        if self._index.pop(key, None) is not None:
            self._items = [item for item in self._items if item[0] != key]

    def items(self) -> list[tuple[str, str]]:
        return [(name, value) for _, name, value in self._items]

    def copy(self) -> Headers:
        copy = Headers()
        copy._items = list(self._items)
        copy._index = {key: list(values) for key, values in self._index.items()}
        return copy

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and _key(name)[0] in self._index

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return self.items() == other.items()

    def __repr__(self) -> str:
        return f"Headers({self.items()!r})"


def _check_header(name: str, value: str) -> None:
    # A CR or LF in a value would let whoever chose it write headers of their own.
    if not _TOKEN_RE.fullmatch(name):
        raise ValueError(f"bad header name {name!r}")
    if _CTL_RE.search(value):
        raise ValueError(f"control character in header {name}")


class CSeq(NamedTuple):
    seq: int
    method: str


@dataclass
class SipUri:
    """sip:user@host:port;params (the URI's ?headers part is not supported, and refused)."""

    host: str
    user: str | None = None
    port: int | None = None
    scheme: str = "sip"
    params: dict[str, str | None] = field(default_factory=dict)

    def __str__(self) -> str:
        out = f"{self.scheme}:"
        if self.user is not None:
            out += f"{self.user}@"
        out += self.host
        if self.port is not None:
            out += f":{self.port}"
        return out + _render_params(self.params)


@dataclass
class NameAddr:
    """A From/To/Contact value: optional display name, URI, header parameters (tag...)."""

    uri: SipUri
    display: str | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def __str__(self) -> str:
        display = f'"{_escape_quoted(self.display)}" ' if self.display is not None else ""
        return f"{display}<{self.uri}>{_render_params(self.params)}"


@dataclass
class Via:
    """One Via element: SIP/2.0/<transport> host[:port];params."""

    transport: str
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def received(self) -> str | None:
        return self.params.get("received")

    @property
    def rport(self) -> bool:
        """True when the sender asked for rport (RFC 3581), with or without a value."""
        return "rport" in self.params

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return f"SIP/2.0/{self.transport} {self.host}{port}{_render_params(self.params)}"


@dataclass
class SipRequest:
    method: str
    uri: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    @property
    def call_id(self) -> str:
        return self.headers.get("Call-ID") or ""

    @property
    def cseq(self) -> CSeq:
        return parse_cseq(self.headers.get("CSeq") or "")

    @property
    def vias(self) -> list[Via]:
        return [parse_via(v) for v in self.headers.get_all("Via")]

    @property
    def from_(self) -> NameAddr:
        return parse_name_addr(self.headers.get("From") or "")

    @property
    def to(self) -> NameAddr:
        return parse_name_addr(self.headers.get("To") or "")

    @property
    def request_uri(self) -> SipUri:
        return parse_uri(self.uri)


@dataclass
class SipResponse:
    status: int
    reason: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    @property
    def call_id(self) -> str:
        return self.headers.get("Call-ID") or ""

    @property
    def cseq(self) -> CSeq:
        return parse_cseq(self.headers.get("CSeq") or "")

    @property
    def vias(self) -> list[Via]:
        return [parse_via(v) for v in self.headers.get_all("Via")]

    @property
    def from_(self) -> NameAddr:
        return parse_name_addr(self.headers.get("From") or "")

    @property
    def to(self) -> NameAddr:
        return parse_name_addr(self.headers.get("To") or "")


SipMessage = SipRequest | SipResponse


REASONS = {
    100: "Trying",
    180: "Ringing",
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    423: "Interval Too Brief",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    486: "Busy Here",
    489: "Bad Event",
    500: "Server Internal Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
}


def reason_phrase(status: int) -> str:
    return REASONS.get(status, "Unknown")


# --- building -----------------------------------------------------------------------------


def new_branch() -> str:
    """A fresh RFC 3261 branch (magic cookie + 64 random bits)."""
    return BRANCH_COOKIE + secrets.token_hex(8)


def new_tag() -> str:
    return secrets.token_hex(6)


def new_call_id() -> str:
    return secrets.token_hex(12)


def build_request(
    method: str,
    uri: str,
    *,
    from_: str,
    to: str,
    call_id: str | None = None,
    cseq: int = 1,
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    content_type: str | None = None,
) -> SipRequest:
    """A new out-of-dialog request. `from_`/`to` are name-addr values ("<sip:id@domain>");
    a From tag is added when `from_` has none. Via is left to the stack (SipStack.request adds
    it with a fresh branch)."""
    from_addr = parse_name_addr(from_)
    if from_addr.tag is None:
        from_addr.params["tag"] = new_tag()
    h = Headers()
    h.add("From", str(from_addr))
    h.add("To", str(parse_name_addr(to)))
    h.add("Call-ID", call_id or new_call_id())
    h.add("CSeq", f"{cseq} {method}")
    h.add("Max-Forwards", "70")
    for name, value in headers or []:
        h.add(name, value)
    if content_type is not None:
        h.set("Content-Type", content_type)
    return SipRequest(method, uri, h, body)


def make_response(
    request: SipRequest,
    status: int,
    reason: str | None = None,
    *,
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    to_tag: str | None = None,
) -> SipResponse:
    """The response to `request` (RFC 3261 8.2.6): Via (all), From, To, Call-ID and CSeq copied;
    a To tag added (`to_tag`, else a fresh one) to a response above 100 whose To has none."""
    h = Headers()
    for via in request.headers.get_all("Via"):
        h.add("Via", via)
    to_value = request.headers.get("To") or ""
    if status > 100:
        to = parse_name_addr(to_value)
        if to.tag is None:
            to.params["tag"] = to_tag or new_tag()
            to_value = str(to)
    h.add("From", request.headers.get("From") or "")
    h.add("To", to_value)
    h.add("Call-ID", request.call_id)
    h.add("CSeq", request.headers.get("CSeq") or "")
    for name, value in headers or []:
        h.add(name, value)
    return SipResponse(status, reason or reason_phrase(status), h, body)


def serialize(message: SipMessage) -> bytes:
    """The wire form; Content-Length is always written, equal to the body's length."""
    if isinstance(message, SipRequest):
        start = f"{message.method} {message.uri} {SIP_VERSION}"
    else:
        start = f"{SIP_VERSION} {message.status} {message.reason}"
    lines = [start]
    lines.extend(
        f"{name}: {value}" for name, value in message.headers.items() if name != "Content-Length"
    )
    lines.append(f"Content-Length: {len(message.body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + message.body


# --- parsing ------------------------------------------------------------------------------


def parse_message(data: bytes, limits: Limits = DEFAULT_LIMITS) -> SipRequest | SipResponse:
    """One whole message. Raises SipParseError (and nothing else) when it is not valid SIP.

    Bytes after the body that Content-Length announces are ignored (RFC 3261 18.3); without
    Content-Length the body is the rest of `data` (a UDP datagram: stream framing requires the
    header before calling this)."""
    if len(data) > limits.max_message_bytes:
        raise SipParseError("message_too_large", str(len(data)))
    end = data.find(b"\r\n\r\n", 0, limits.max_head_bytes + 4)
    if end < 0:
        if len(data) > limits.max_head_bytes:
            raise SipParseError("headers_too_large")
        raise SipParseError("no_header_end")
    try:
        head = data[:end].decode("utf-8")
    except UnicodeDecodeError:
        raise SipParseError("bad_characters", "head is not UTF-8") from None
    if _HEAD_CTL_RE.search(head):
        raise SipParseError("bad_characters")
    lines = head.split("\r\n")
    if head.count("\r") != len(lines) - 1 or head.count("\n") != len(lines) - 1:
        raise SipParseError("bad_characters", "bare CR or LF")
    if max(map(len, lines)) > limits.max_line_bytes:
        raise SipParseError("line_too_long")
    headers = _parse_headers(lines[1:], limits)
    body = _cut_body(data[end + 4 :], headers, limits)
    message = _start_line(lines[0], headers, body)
    _check_mandatory(message)
    return message


def _start_line(line: str, headers: Headers, body: bytes) -> SipRequest | SipResponse:
    if line.startswith("SIP/"):
        m = _STATUS_RE.fullmatch(line)
        if m is None:
            raise SipParseError("bad_start_line")
        return SipResponse(int(m.group(1)), m.group(2), headers, body)
    parts = line.split(" ")
    if len(parts) != 3 or parts[2] != SIP_VERSION or not _TOKEN_RE.fullmatch(parts[0]):
        raise SipParseError("bad_start_line")
    parse_uri(parts[1])
    return SipRequest(parts[0], parts[1], headers, body)


def _parse_headers(lines: list[str], limits: Limits) -> Headers:
    raw: list[tuple[str, str]] = []
    for line in lines:
        if line[:1] in (" ", "\t"):  # folded continuation (RFC 3261 7.3.1)
            if not raw:
                raise SipParseError("bad_header", "continuation without a header")
            name, value = raw[-1]
            raw[-1] = (name, f"{value} {line.strip()}")
            continue
        name, sep, value = line.partition(":")
        name = name.rstrip(" \t")
        if not sep or not _TOKEN_RE.fullmatch(name):
            raise SipParseError("bad_header")
        raw.append((name, value.strip(" \t")))
    headers = Headers()
    entries = 0
    seen: set[str] = set()
    for name, value in raw:
        key, canon = _key(name)
        values = split_list(value) if key in _LIST_HEADERS else [value]
        entries += len(values)
        if entries > limits.max_header_count:
            raise SipParseError("too_many_headers")
        if key in _SINGLE_HEADERS:
            if key in seen or len(values) > 1:
                raise SipParseError("duplicate_header", canon)
            seen.add(key)
        for v in values:
            headers._append(key, canon, v)  # name and value checked with the whole head
    return headers


def _cut_body(rest: bytes, headers: Headers, limits: Limits) -> bytes:
    value = headers.get("Content-Length")
    if value is None:
        if len(rest) > limits.max_body_bytes:
            raise SipParseError("body_too_large")
        return rest
    length = parse_content_length(value)
    if length > limits.max_body_bytes:
        raise SipParseError("body_too_large")
    if len(rest) < length:
        raise SipParseError("body_truncated", f"{len(rest)} of {length}")
    return rest[:length]


def parse_content_length(value: str) -> int:
    """A Content-Length value: 1 to 9 digits (anything longer is past every limit anyway)."""
    if not (0 < len(value) <= 9 and value.isascii() and value.isdigit()):
        raise SipParseError("bad_content_length", value[:20])
    return int(value)


def _check_mandatory(message: SipRequest | SipResponse) -> None:
    h = message.headers
    for name in ("Via", "From", "To", "Call-ID", "CSeq"):
        if name not in h:
            raise SipParseError("missing_header", name)
    if not h.get("Call-ID"):
        raise SipParseError("missing_header", "Call-ID")
    for via in h.get_all("Via"):
        parse_via(via)
    parse_name_addr(h.get("From") or "")
    parse_name_addr(h.get("To") or "")
    cseq = parse_cseq(h.get("CSeq") or "")
    if isinstance(message, SipRequest) and cseq.method != message.method:
        raise SipParseError("bad_cseq", "method differs from the request's")
    for contact in h.get_all("Contact"):
        if contact != "*":
            parse_name_addr(contact)
    for name in ("Expires", "Max-Forwards"):
        value = h.get(name)
        if value is not None and not (0 < len(value) <= 10 and value.isascii() and value.isdigit()):
            raise SipParseError("bad_header", name)


def split_list(value: str) -> list[str]:
    """Splits a list header's value at commas outside quotes and angle brackets."""
    if '"' not in value and "<" not in value:
        out = [part.strip(" \t") for part in value.split(",")]
        if not all(out):
            raise SipParseError("bad_header", "empty list element")
        return out
    out = []
    start = 0
    quoted = angle = escaped = False
    for i, ch in enumerate(value):
        if escaped:
            escaped = False
        elif quoted:
            if ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "<":
            angle = True
        elif ch == ">":
            angle = False
        elif ch == "," and not angle:
            out.append(value[start:i].strip(" \t"))
            start = i + 1
    out.append(value[start:].strip(" \t"))
    if any(not part for part in out):
        raise SipParseError("bad_header", "empty list element")
    return out


_HOST_RE = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}"
    r"[A-Za-z0-9])?\.?|\[[0-9A-Fa-f:.]{2,45}\]"
)
_USER_RE = re.compile(r"[A-Za-z0-9\-_.!~*'()&=+$,;/%]+")
_PARAM_NAME_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_PARAM_VALUE_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~\[\]:/&$]+|\"[^\"\\]*\"")
_PORT_RE = re.compile(r"[0-9]{1,5}")


def _parse_params(text: str, reason: str) -> dict[str, str | None]:
    """`;a=b;c` (the leading ';' included) into {a: b, c: None}; names kept lower case."""
    params: dict[str, str | None] = {}
    if not text:
        return params
    if not text.startswith(";"):
        raise SipParseError(reason, "junk before parameters")
    for part in text[1:].split(";"):
        name, sep, value = part.strip(" \t").partition("=")
        name = name.strip(" \t")
        value = value.strip(" \t")
        if not _PARAM_NAME_RE.fullmatch(name) or (sep and not _PARAM_VALUE_RE.fullmatch(value)):
            raise SipParseError(reason, "bad parameter")
        key = name.lower()
        if key in params:
            raise SipParseError(reason, f"parameter {key} twice")
        params[key] = value if sep else None
    return params


def _render_params(params: dict[str, str | None]) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


def _parse_hostport(text: str, reason: str) -> tuple[str, int | None]:
    if text.startswith("["):
        close = text.find("]")
        host, rest = text[: close + 1], text[close + 1 :]
    else:
        host, _, port_text = text.partition(":")
        rest = f":{port_text}" if _ else ""
    if not _HOST_RE.fullmatch(host):
        raise SipParseError(reason, "bad host")
    if not rest:
        return host, None
    if not (rest.startswith(":") and _PORT_RE.fullmatch(rest[1:])) or not 0 < int(rest[1:]) < 65536:
        raise SipParseError(reason, "bad port")
    return host, int(rest[1:])


def parse_uri(text: str) -> SipUri:
    """A sip: or sips: URI. Raises SipParseError("bad_uri")."""
    scheme, colon, rest = text.partition(":")
    scheme = scheme.lower()
    if not colon or scheme not in ("sip", "sips") or "?" in rest:
        raise SipParseError("bad_uri")
    user: str | None = None
    if "@" in rest:
        user, _, rest = rest.rpartition("@")
        if not _USER_RE.fullmatch(user) or "@" in user:
            raise SipParseError("bad_uri", "bad user part")
    hostport, semi, params = rest.partition(";")
    host, port = _parse_hostport(hostport, "bad_uri")
    return SipUri(host, user, port, scheme, _parse_params(semi + params, "bad_uri"))


def parse_name_addr(text: str) -> NameAddr:
    """A From/To/Contact value, with or without angle brackets and display name."""
    text = text.strip(" \t")
    display: str | None = None
    if text.startswith('"'):
        end, display = _quoted(text)
        text = text[end:].lstrip(" \t")
        if not text.startswith("<"):
            raise SipParseError("bad_uri", "display name without <uri>")
    lt = text.find("<")
    if lt >= 0:
        if display is None and lt > 0:
            display = text[:lt].strip(" \t")
            if not all(_TOKEN_RE.fullmatch(word) for word in display.split()):
                raise SipParseError("bad_uri", "bad display name")
        gt = text.find(">", lt)
        if gt < 0:
            raise SipParseError("bad_uri", "unclosed <")
        uri = parse_uri(text[lt + 1 : gt])
        params = _parse_params(text[gt + 1 :].strip(" \t"), "bad_uri")
        return NameAddr(uri, display, params)
    # addr-spec: parameters after the URI belong to the header (RFC 3261 20.10).
    uri_text, semi, params_text = text.partition(";")
    return NameAddr(parse_uri(uri_text), None, _parse_params(semi + params_text, "bad_uri"))


def _quoted(text: str) -> tuple[int, str]:
    out: list[str] = []
    i = 1
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
            continue
        if ch == '"':
            return i + 1, "".join(out)
        out.append(ch)
        i += 1
    raise SipParseError("bad_uri", "unclosed quote")


def _escape_quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def parse_via(text: str) -> Via:
    """One Via element. Raises SipParseError("bad_via")."""
    proto, _, rest = text.strip(" \t").partition(" ")
    parts = proto.split("/")
    if len(parts) != 3 or parts[0].upper() != "SIP" or parts[1] != "2.0":
        raise SipParseError("bad_via", "bad protocol")
    transport = parts[2].upper()
    if not _TOKEN_RE.fullmatch(transport):
        raise SipParseError("bad_via", "bad transport")
    hostport, semi, params = rest.strip(" \t").partition(";")
    host, port = _parse_hostport(hostport.strip(" \t"), "bad_via")
    return Via(transport, host, port, _parse_params(semi + params, "bad_via"))


def parse_cseq(text: str) -> CSeq:
    """ "<seq> <METHOD>", seq below 2**31 (RFC 3261 8.1.1.5)."""
    seq, _, method = text.strip(" \t").partition(" ")
    method = method.strip(" \t")
    if not (0 < len(seq) <= 10 and seq.isascii() and seq.isdigit()) or int(seq) >= 2**31:
        raise SipParseError("bad_cseq")
    if not _TOKEN_RE.fullmatch(method):
        raise SipParseError("bad_cseq")
    return CSeq(int(seq), method)
