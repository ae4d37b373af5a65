"""China Telecom CTWing (AEP) HTTP push: dataReport, eventReport, deviceOnlineOfflineReport."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ingest.push.receiver import Uplink, decode_fields

PLATFORM_TAG = "ctwing_id"


class CtwingPush(BaseModel):
    """The envelope fields we use; CTWing sends more, which are ignored."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    message_type: str = Field(alias="messageType")
    device_id: str = Field(alias="deviceId", min_length=1, max_length=64)
    timestamp: int
    imei: str | None = Field(default=None, alias="IMEI")
    up_packet_sn: int | None = Field(default=None, alias="upPacketSN")
    payload: dict[str, Any] | None = None
    event_type: int | None = Field(default=None, alias="eventType")
    event_content: dict[str, Any] | None = Field(default=None, alias="eventContent")


def to_uplinks(push: CtwingPush, decoder: str) -> list[Uplink]:
    """The hub's uplinks for one push; ValueError when the push cannot be understood."""
    seq = push.up_packet_sn if push.up_packet_sn is not None else push.timestamp
    match push.message_type:
        case "dataReport":
            return decode_fields(decoder, _report_fields(push.payload or {}), seq, push.timestamp)
        case "eventReport":
            return decode_fields(decoder, push.event_content or {}, seq, push.timestamp)
        case "deviceOnlineOfflineReport":
            if push.event_type not in (0, 1):
                raise ValueError("deviceOnlineOfflineReport needs eventType 1 (online) or 0")
            return [Uplink("status", {"online": push.event_type == 1})]
    raise ValueError(f"messageType {push.message_type!r} is not handled")


def _report_fields(payload: dict[str, Any]) -> dict[str, Any]:
    """Fields of a dataReport: `serviceData` (object model), or `APPdata` (base64 JSON)."""
    if isinstance(payload.get("serviceData"), dict):
        return dict(payload["serviceData"])
    if "APPdata" in payload:
        try:
            decoded = json.loads(base64.b64decode(payload["APPdata"], validate=True))
        except (binascii.Error, ValueError):
            raise ValueError("APPdata is not base64 of a JSON object") from None
        if not isinstance(decoded, dict):
            raise ValueError("APPdata is not base64 of a JSON object")
        return decoded
    return payload
