"""MANSCDP bodies (GB/T 28181's XML): decoded strictly, and nothing an XML parser could be made
to expand.

Charset by the XML declaration: UTF-8 strictly; GB2312, GBK and GB18030 all as GB18030 (its
superset; devices that say GB2312 often send GBK characters); no declaration, or one naming
something else: UTF-8 if the bytes are UTF-8, else GB18030. A bare `&` (devices put them in
names unescaped) is read as itself. Doctypes, entities and processing instructions are refused
(no entity expansion, so no billion laughs), and so are documents nested deeper or with more
elements than a MANSCDP message has.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from xml.parsers import expat

MAX_DEPTH = 8
MAX_ELEMENTS = 5000  # a catalog page of a 64 KiB message holds a few hundred items
MAX_TEXT = 4096
_DECL = re.compile(rb"^\s*<\?xml[^>]*?\?>", re.IGNORECASE)
_TEXT_DECL = re.compile(r"^\s*<\?xml[^>]*?\?>", re.IGNORECASE)  # the same, once decoded
_ENCODING = re.compile(rb"""encoding\s*=\s*["']([A-Za-z0-9._-]{1,40})["']""", re.IGNORECASE)
_GB = frozenset({"gb2312", "gbk", "gb18030", "cp936", "euc-cn", "x-gbk"})
_BARE_AMP = re.compile(r"&(?!(?:[A-Za-z][A-Za-z0-9]{0,15}|#[0-9]{1,7}|#x[0-9A-Fa-f]{1,6});)")


class BodyError(ValueError):
    """A body the hub will not read; `reason` is the drop counter's label."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(slots=True)
class Element:
    tag: str
    text: str = ""
    attrs: dict[str, str] = field(default_factory=dict)
    children: list[Element] = field(default_factory=list)

    def find(self, tag: str) -> Element | None:
        return next((c for c in self.children if c.tag == tag), None)

    def findall(self, tag: str) -> list[Element]:
        return [c for c in self.children if c.tag == tag]

    def get(self, tag: str) -> str | None:
        """The stripped text of the first child `tag`; None if absent or empty."""
        child = self.find(tag)
        if child is None:
            return None
        return child.text.strip() or None


def decode_text(body: bytes) -> str:
    """The body as text, by its declared charset (module docstring)."""
    match = _DECL.match(body)
    declared = None
    if match:
        enc = _ENCODING.search(match.group(0))
        declared = enc.group(1).decode().lower() if enc else None
    if declared in ("utf-8", "utf8"):
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            raise BodyError("bad_charset", "declared UTF-8 but is not") from None
    if declared in _GB:
        try:
            return body.decode("gb18030")
        except UnicodeDecodeError:
            raise BodyError("bad_charset", "declared GB but is not GB18030") from None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return body.decode("gb18030")
    except UnicodeDecodeError:
        raise BodyError("bad_charset", "neither UTF-8 nor GB18030") from None


def parse_body(body: bytes) -> Element:
    """The root element of a MANSCDP body; BodyError for anything else."""
    text = _TEXT_DECL.sub("", decode_text(body).lstrip("\ufeff"), count=1)
    if "&" in text:
        text = _BARE_AMP.sub("&amp;", text)
    return _Builder().parse(text.encode("utf-8"))


class _Builder:
    def __init__(self) -> None:
        self.root: Element | None = None
        self.stack: list[Element] = []
        self.count = 0
        parser = expat.ParserCreate(encoding="UTF-8")
        parser.StartElementHandler = self._start
        parser.EndElementHandler = self._end
        parser.CharacterDataHandler = self._chars
        parser.StartDoctypeDeclHandler = self._refuse_doctype
        parser.EntityDeclHandler = self._refuse_entity
        parser.ProcessingInstructionHandler = self._refuse_pi
        parser.ExternalEntityRefHandler = self._refuse_external
        parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        parser.buffer_text = True  # one text callback per run of text, not per line
        self.parser = parser

    def parse(self, data: bytes) -> Element:
        try:
            self.parser.Parse(data, True)
        except expat.ExpatError as exc:
            raise BodyError("bad_xml", str(exc)) from None
        if self.root is None:
            raise BodyError("bad_xml", "no root element")
        return self.root

    def _start(self, tag: str, attrs: dict[str, str]) -> None:
        self.count += 1
        if self.count > MAX_ELEMENTS:
            raise BodyError("xml_too_large", f"more than {MAX_ELEMENTS} elements")
        if len(self.stack) >= MAX_DEPTH:
            raise BodyError("xml_too_deep", f"nested deeper than {MAX_DEPTH}")
        element = Element(tag, attrs=dict(attrs))
        if self.stack:
            self.stack[-1].children.append(element)
        elif self.root is None:
            self.root = element
        self.stack.append(element)

    def _end(self, tag: str) -> None:
        self.stack.pop()

    def _chars(self, data: str) -> None:
        if self.stack and not data.isspace():
            top = self.stack[-1]
            if len(top.text) + len(data) > MAX_TEXT:
                raise BodyError("xml_too_large", "an element's text is too long")
            top.text += data

    def _refuse_doctype(self, *args: object) -> None:
        raise BodyError("xml_doctype", "doctypes are not accepted")

    def _refuse_entity(self, *args: object) -> None:
        raise BodyError("xml_entity", "entity declarations are not accepted")

    def _refuse_pi(self, *args: object) -> None:
        raise BodyError("xml_pi", "processing instructions are not accepted")

    def _refuse_external(self, *args: object) -> int:
        raise BodyError("xml_entity", "external entities are not accepted")


@dataclass(frozen=True, slots=True)
class Manscdp:
    """What every MANSCDP message says: its root (Query, Control, Notify, Response), CmdType,
    SN and DeviceID; the element itself for the rest."""

    root: str
    cmd_type: str
    sn: str
    device_id: str
    element: Element


def read_manscdp(body: bytes) -> Manscdp:
    element = parse_body(body)
    fields = element
    # The <AlarmInfo> variant: the alarm's fields inside an <AlarmInfo> of the root, or
    # <AlarmInfo> as the root itself.
    inner = element.find("AlarmInfo")
    if inner is not None and element.get("CmdType") is None:
        fields = inner
    cmd_type = fields.get("CmdType") or ("Alarm" if element.tag == "AlarmInfo" else None)
    sn = fields.get("SN")
    device_id = fields.get("DeviceID")
    if not cmd_type or sn is None or not device_id:
        raise BodyError("manscdp_fields", "CmdType, SN and DeviceID are required")
    if len(sn) > 32 or len(device_id) > 64:
        raise BodyError("manscdp_fields", "SN or DeviceID too long")
    root = "Notify" if element.tag == "AlarmInfo" else element.tag
    return Manscdp(root=root, cmd_type=cmd_type, sn=sn, device_id=device_id, element=fields)


# The quick path for the commonest body, a Notify Keepalive: plain ASCII, one level of simple
# elements. Anything else (another charset, an entity, a comment, CDATA, a processing
# instruction, attributes, nesting, text beside the elements) is left to `read_manscdp`.
QUICK_MAX_BODY = 2048
_QUICK_TAG = rb"[A-Za-z][A-Za-z0-9_]{0,31}"
_QUICK_CHILD = re.compile(rb"<(" + _QUICK_TAG + rb")>([^<&]*)</(" + _QUICK_TAG + rb")>")
_QUICK_DOC = re.compile(
    rb"\s*(?i:<\?xml[^>]*?\?>)?\s*<Notify>((?:\s*" + _QUICK_CHILD.pattern + rb")*)\s*</Notify>\s*"
)
_QUICK_NOT_PLAIN = re.compile(rb"[^\t\n\r\x20-\x7e]")
# After strip(), as Element.get reads: one word (no space inside, where expat would turn a CR
# LF into a LF), within read_manscdp's lengths.
_QUICK_CMD = re.compile(rb"\s*Keepalive\s*")
_QUICK_SN = re.compile(rb"\s*([!-~]{1,32})\s*")
_QUICK_ID = re.compile(rb"\s*([!-~]{1,64})\s*")


def quick_keepalive(body: bytes) -> tuple[str, str] | None:
    """(SN, DeviceID) of a Notify Keepalive as `read_manscdp` reads it, or None when the body
    is not of that plain form (`read_manscdp` then decides). Never raises."""
    if len(body) > QUICK_MAX_BODY or _QUICK_NOT_PLAIN.search(body):
        return None
    if b"&" in body or b"]]>" in body:  # a reference (or bare &), or what text may not hold
        return None
    doc = _QUICK_DOC.fullmatch(body)
    if doc is None:
        return None
    fields: dict[bytes, bytes] = {}
    for tag, text, closing in _QUICK_CHILD.findall(doc.group(1)):
        if tag != closing:
            return None
        if tag not in fields:  # the first of a name, as Element.get reads
            fields[tag] = text
    cmd = _QUICK_CMD.fullmatch(fields.get(b"CmdType", b""))
    sn = _QUICK_SN.fullmatch(fields.get(b"SN", b""))
    device = _QUICK_ID.fullmatch(fields.get(b"DeviceID", b""))
    if cmd is None or sn is None or device is None:
        return None
    return sn.group(1).decode(), device.group(1).decode()


def build(root: str, cmd_type: str, sn: int, device_id: str, extra: str = "") -> bytes:
    """A MANSCDP request body from the hub, in GB2312 as most devices expect (only ASCII goes
    in, so it is the same bytes in UTF-8)."""
    return (
        f'<?xml version="1.0" encoding="GB2312"?>\r\n<{root}>\r\n<CmdType>{cmd_type}</CmdType>\r\n'
        f"<SN>{sn}</SN>\r\n<DeviceID>{device_id}</DeviceID>\r\n{extra}</{root}>\r\n"
    ).encode("ascii")
