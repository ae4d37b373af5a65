"""Per-vendor smoke-sensor payloads, decoded into the hub's own telemetry and events.

A vendor decoder takes the fields a device reported (after the platform's envelope is removed)
and returns uplink bodies in DESIGN §3 shape, without `seq` and `ts` (the receiver adds them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Decoded:
    telemetry: dict[str, Any]
    event: dict[str, Any] | None


class VendorDecoder(Protocol):
    name: str

    def decode(self, fields: Mapping[str, Any]) -> Decoded: ...


# Alarm_Status codes of the common NB-IoT smoke sensor object model.
ALARM_STATUS_EVENTS: dict[int, str | None] = {
    0: None,  # normal
    1: "smoke_alarm",
    2: "alarm_cleared",  # silenced at the device
    3: "low_battery",  # low voltage
    4: "fault",
    5: "tamper",  # removed from its base
    6: "test",  # test button: not a fire
}


class AlarmStatusDecoder:
    """`Alarm_Status`, `Smoke_Value` (dB/m), `Temperature`, `Battery_Level`, `Signal_Strength`."""

    name = "alarm_status"

    def decode(self, fields: Mapping[str, Any]) -> Decoded:
        telemetry = {
            key: fields[source]
            for key, source in (
                ("smoke", "Smoke_Value"),
                ("temp_c", "Temperature"),
                ("battery_pct", "Battery_Level"),
                ("rssi_dbm", "Signal_Strength"),
            )
            if fields.get(source) is not None
        }
        code = fields.get("Alarm_Status")
        event: dict[str, Any] | None = None
        if code is not None:
            if not isinstance(code, int) or code not in ALARM_STATUS_EVENTS:
                raise ValueError(f"Alarm_Status {code!r} is not in the code table")
            kind = ALARM_STATUS_EVENTS[code]
            if kind:
                event = {
                    "type": kind,
                    **{k: telemetry[k] for k in ("smoke", "temp_c") if k in telemetry},
                }
        return Decoded(telemetry=telemetry, event=event)


class NativeDecoder:
    """Devices that already speak the hub's field names (`smoke`, `temp_c`, `type`, ...)."""

    name = "native"

    def decode(self, fields: Mapping[str, Any]) -> Decoded:
        body = dict(fields)
        kind = body.pop("type", None)
        return Decoded(
            telemetry={} if kind else body, event={"type": kind, **body} if kind else None
        )


DECODERS: dict[str, VendorDecoder] = {d.name: d for d in (AlarmStatusDecoder(), NativeDecoder())}
DEFAULT_DECODER = "alarm_status"
