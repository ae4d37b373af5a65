"""China Mobile OneNET HTTP push: URL verification, data points and online/offline messages."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections import defaultdict
from typing import Any

from ingest.push.receiver import Uplink, decode_fields

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


def to_uplinks(msg: Any, decoder_for: dict[str, str]) -> dict[str, list[Uplink]]:
    """Platform device id → uplinks. Data points reported at the same instant form one
    report (seq = their `at`); type 2 messages are online/offline status."""
    items = json.loads(msg) if isinstance(msg, str) else msg
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list):
        raise ValueError("msg is neither a message nor a list of messages")
    points: dict[tuple[str, int], dict[str, Any]] = defaultdict(dict)
    result: dict[str, list[Uplink]] = defaultdict(list)
    for item in items:
        if not isinstance(item, dict) or "dev_id" not in item:
            raise ValueError("each message needs type and dev_id")
        dev = str(item["dev_id"])
        if item.get("type") == 1:
            points[(dev, int(item["at"]))][str(item["ds_id"])] = item.get("value")
        elif item.get("type") == 2:
            result[dev].append(Uplink("status", {"online": item.get("status") == 1}))
        else:
            raise ValueError(f"message type {item.get('type')!r} is not handled")
    for (dev, at), fields in sorted(points.items()):
        result[dev] += decode_fields(decoder_for.get(dev, "alarm_status"), fields, at, at)
    return dict(result)


def platform_ids(msg: Any) -> set[str]:
    items = json.loads(msg) if isinstance(msg, str) else msg
    items = [items] if isinstance(items, dict) else items
    return {str(i["dev_id"]) for i in items if isinstance(i, dict) and "dev_id" in i}
