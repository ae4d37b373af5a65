"""China Mobile OneNET HTTP push, in both of the platform's envelopes.

- The legacy push (multi-protocol and NB-IoT products): `{"msg": ..., "nonce": ...,
  "msg_signature": ...}`, where msg is a message or a list: `type` 1 a data point (`dev_id`,
  `ds_id`, `value`, `at`), 2 online/offline (`status` 1 or 0).
- OneNET Studio: `{"msg": ..., "nonce": ..., "signature": ...}`, where msg is a `notify`
  (`notifyType` property or event, values under `data.params.<name>.value`) or a `lifeCycle`
  message (`data.status` online/offline) of a device named by `deviceName` (and `deviceId`,
  `imei`).

Both sign `base64(md5(token + nonce + msg))`, msg as the text sent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from ingest.carriers.receiver import Uplink, decode_fields

PLATFORM_TAG = "onenet_id"


def signature(token: str, nonce: str, msg: str) -> str:
    """OneNET's signature: base64(md5(token + nonce + msg))."""
    return base64.b64encode(hashlib.md5((token + nonce + msg).encode()).digest()).decode()  # noqa: S324


def verify(token: str, nonce: str, msg: str, given: str) -> bool:
    return hmac.compare_digest(signature(token, nonce, msg), given)


def message_text(msg: Any) -> str:
    """The text the signature covers: the string as sent, or compact JSON of an object."""
    if isinstance(msg, str):
        return msg
    return json.dumps(msg, separators=(",", ":"), ensure_ascii=False)


def envelope(raw: bytes) -> tuple[Any, str, str]:
    """(msg, nonce, signature) of a push body; ValueError when it is neither envelope."""
    try:
        body = json.loads(raw)
        msg, nonce = body["msg"], str(body["nonce"])
        given = body.get("msg_signature", body.get("signature"))
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ValueError("body is {msg, nonce, msg_signature} or {msg, nonce, signature}") from None
    if not isinstance(given, str):
        raise ValueError("body is {msg, nonce, msg_signature} or {msg, nonce, signature}")
    return msg, nonce, given


@dataclass(frozen=True)
class Source:
    """A platform device: the identities to find it by, in order, and its IMEI if given."""

    ids: tuple[str, ...]
    imei: str | None = None


@dataclass
class Report:
    source: Source
    seq: int
    ts: int  # ms
    fields: dict[str, Any] = field(default_factory=dict)
    online: bool | None = None
    # Whether the platform typed the values (Studio's thing model) or carries the device's own
    # untyped values (legacy data points): ingest.carriers.vendors.
    typed: bool = True


def parse(msg: Any) -> list[Report]:
    """The reports in a push's msg, either envelope; ValueError when it cannot be understood."""
    items = json.loads(msg) if isinstance(msg, str) else msg
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list) or not items:
        raise ValueError("msg is neither a message nor a list of messages")
    reports: list[Report] = []
    points: dict[tuple[Source, int], Report] = {}
    for item in items:
        if not isinstance(item, dict):
            raise ValueError("each message is a JSON object")
        if "messageType" in item:
            reports.append(_studio(item))
        else:
            _legacy(item, reports, points)
    return reports + list(points.values())


def _legacy(
    item: dict[str, Any], reports: list[Report], points: dict[tuple[Source, int], Report]
) -> None:
    if "dev_id" not in item:
        raise ValueError("a message needs dev_id")
    source = Source((str(item["dev_id"]),))
    at = _int(item.get("at"), "at")
    if item.get("type") == 1:
        # Data points reported at the same instant form one report, identified by `at`.
        report = points.setdefault((source, at), Report(source, at, at, typed=False))
        report.fields[str(item.get("ds_id"))] = item.get("value")
    elif item.get("type") == 2:
        reports.append(Report(source, at, at, online=_status(item.get("status"))))
    else:
        raise ValueError(f"message type {item.get('type')!r} is not handled")


def _studio(item: dict[str, Any]) -> Report:
    ids = tuple(str(item[k]) for k in ("deviceName", "deviceId") if item.get(k) is not None)
    if not ids:
        raise ValueError("a message needs deviceName or deviceId")
    imei = str(item["imei"]) if item.get("imei") else None
    source = Source(ids, imei)
    data = item.get("data")
    if not isinstance(data, dict):
        raise ValueError("a message needs data")
    if item["messageType"] == "lifeCycle":
        ts = _int(data.get("time"), "data.time")
        status = data.get("status")
        if status not in ("online", "offline"):
            raise ValueError("lifeCycle data.status is online or offline")
        return Report(source, ts, ts, online=status == "online")
    if item["messageType"] != "notify":
        raise ValueError(f"messageType {item['messageType']!r} is not handled")
    params = data.get("params")
    if not isinstance(params, dict) or not params:
        raise ValueError("notify needs data.params")
    fields: dict[str, Any] = {}
    times = []
    for name, point in params.items():
        value = point.get("value") if isinstance(point, dict) else point
        if item.get("notifyType") == "event" and isinstance(value, dict):
            fields.update(value)  # an event's output values
            fields.setdefault(name, 1)  # and the event itself, by its identifier
        else:
            fields[name] = value
        if isinstance(point, dict) and point.get("time") is not None:
            times.append(_int(point["time"], f"{name}.time"))
    ts = max(times) if times else _int(item.get("time", data.get("time")), "time")
    message_id = str(data.get("id", ""))
    seq = int(message_id) if message_id.isdigit() and len(message_id) <= 15 else ts
    return Report(source, seq, ts, fields=fields)


def to_uplinks(reports: list[Report], decoder: str) -> tuple[list[Uplink], list[str]]:
    """The hub's uplinks for one device's reports, and why each report that could not be
    decoded was not (the others still land)."""
    uplinks: list[Uplink] = []
    errors: list[str] = []
    for report in sorted(reports, key=lambda r: r.ts):
        if report.online is not None:
            uplinks.append(Uplink("status", {"online": report.online}))
            continue
        try:
            uplinks += decode_fields(
                decoder, report.fields, report.seq, report.ts, typed=report.typed
            )
        except ValueError as exc:
            errors.append(str(exc))
    return uplinks, errors


def by_source(reports: list[Report]) -> dict[Source, list[Report]]:
    grouped: dict[Source, list[Report]] = defaultdict(list)
    for report in reports:
        grouped[report.source].append(report)
    return dict(grouped)


def _status(value: Any) -> bool:
    if isinstance(value, bool) or value not in (0, 1):
        raise ValueError("a type 2 message's status is 1 (online) or 0 (offline)")
    return bool(value == 1)


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**53:
        raise ValueError(f"{name} is a timestamp in milliseconds")
    return value
