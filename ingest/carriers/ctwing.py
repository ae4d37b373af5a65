"""China Telecom CTWing (AEP) HTTP push: dataReport, eventReport, deviceOnlineOfflineReport.

Reports carry the device's packet number in `upPacketSN`, but LwM2M devices report -1 there
(and in `upDataSN`): the platform's way of saying "none". Then the report's own timestamp (ms)
identifies it, so a retried push is still recognised as the same report.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ingest.carriers.receiver import Uplink, decode_fields

PLATFORM_TAG = "ctwing_id"


class CtwingPush(BaseModel):
    """The envelope fields we use; CTWing sends more (tenantId, productId, protocol,
    serviceId, IMSI, topic, ...), which are ignored."""

    # Strict: the platform sends numbers as JSON numbers; `true` is no event type.
    model_config = ConfigDict(extra="ignore", populate_by_name=True, strict=True)

    message_type: str = Field(alias="messageType", max_length=64)
    device_id: str = Field(alias="deviceId", min_length=1, max_length=64)
    timestamp: int = Field(ge=0, le=2**53)
    imei: str | None = Field(default=None, alias="IMEI", max_length=32)
    up_packet_sn: int | None = Field(default=None, alias="upPacketSN")
    payload: dict[str, Any] | None = None
    event_type: int | None = Field(default=None, alias="eventType")
    event_content: dict[str, Any] | None = Field(default=None, alias="eventContent")

    @field_validator("up_packet_sn")
    @classmethod
    def _no_number(cls, value: int | None) -> int | None:
        """-1 (or any negative value) is how the platform says there is no packet number."""
        return value if value is not None and 0 <= value < 2**40 else None

    @property
    def seq(self) -> int:
        return self.up_packet_sn if self.up_packet_sn is not None else self.timestamp


def to_uplinks(push: CtwingPush, decoder: str) -> list[Uplink]:
    """The hub's uplinks for one push; ValueError when the push cannot be understood."""
    match push.message_type:
        case "dataReport":
            fields, typed = _report_fields(push.payload or {})
            return decode_fields(decoder, fields, push.seq, push.timestamp, typed=typed)
        case "eventReport":
            if not push.event_content:
                raise ValueError("eventReport needs eventContent")
            return decode_fields(decoder, push.event_content, push.seq, push.timestamp, typed=True)
        case "deviceOnlineOfflineReport":
            if push.event_type not in (0, 1):
                raise ValueError("deviceOnlineOfflineReport needs eventType 1 (online) or 0")
            return [Uplink("status", {"online": push.event_type == 1})]
    raise ValueError(f"messageType {push.message_type!r} is not handled")


def _report_fields(payload: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Fields of a dataReport, and whether the platform typed them: `serviceData` (the
    product's object model: typed), or `APPdata` (base64 of the JSON a transparent-transmission
    device wrote itself: untyped)."""
    if isinstance(payload.get("serviceData"), dict):
        return dict(payload["serviceData"]), True
    if "APPdata" in payload:
        try:
            decoded = json.loads(base64.b64decode(str(payload["APPdata"]), validate=True))
        except (binascii.Error, ValueError):
            raise ValueError("APPdata is not base64 of a JSON object") from None
        if not isinstance(decoded, dict):
            raise ValueError("APPdata is not base64 of a JSON object")
        return decoded, False
    return payload, True
