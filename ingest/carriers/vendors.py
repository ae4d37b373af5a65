"""Vendor smoke-sensor reports, decoded into the hub's own telemetry and events.

A vendor decoder takes the fields a device reported (after the platform's envelope is removed)
and returns uplink bodies in design §2 shape, without `seq` and `ts` (the receiver adds them).

The default decoder (`alarm_status`) knows the names NB-IoT smoke sensors use on CTWing and
OneNET object models, in any letter case: the `Alarm_Status` code table, the `smoke_state`,
`battery_state`, `tamper_state` and `fault_state` flags, and the readings (`Smoke_Value`,
`Temperature`, `Battery_Level` / `battery_value`, `battery_voltage`, `Signal_Strength` /
`rsrp`). A report in which it knows no field at all is refused (kept as a dead letter), so a
vendor format nobody mapped yet shows instead of vanishing.

Values keep the JSON type the platform gives them. Where the platform types them (a CTWing
product's object model in `serviceData` and `eventContent`, OneNET Studio's thing model) a
reading is a JSON number, `Alarm_Status` an integer and a flag 0/1 or a boolean: `"0.5"`,
`"1"` or `true` for a reading refuse the report (`schema`). Where the platform carries the
device's own text untyped (CTWing's transparent `APPdata`, OneNET's legacy data points), digit
strings are read as the numbers they spell.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

# A decimal numeral as a device may write one in text (no `nan`, `inf` or digits of other scripts).
_NUMERAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)


@dataclass(frozen=True)
class Decoded:
    telemetry: dict[str, Any]
    events: list[dict[str, Any]] = field(default_factory=list)


class VendorDecoder(Protocol):
    name: str

    def decode(self, fields: Mapping[str, Any], *, typed: bool) -> Decoded: ...


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
# Readings: our metric ← the names vendors use (compared in lower case).
READINGS: dict[str, tuple[str, ...]] = {
    "smoke": ("smoke_value", "smoke_concentration", "smoke"),
    "temp_c": ("temperature", "temp", "temp_c"),
    "battery_pct": ("battery_level", "battery_value", "battery_pct", "battery"),
    "battery_v": ("battery_voltage", "voltage"),
    "rssi_dbm": ("signal_strength", "rsrp", "rssi", "rssi_dbm"),
}
# Flags whose value 1 (or true) raises an event: event ← the names vendors use.
FLAGS: dict[str, tuple[str, ...]] = {
    "smoke_alarm": ("smoke_state", "smoke_alarm", "alarm_state"),
    "low_battery": ("battery_state", "battery_alarm", "low_battery"),
    "tamper": ("tamper_state", "tamper_alarm", "dismantle_state", "tamper"),
    "fault": ("fault_state", "error_state", "fault"),
    "test": ("test_state", "self_test"),
}
_ALARM_STATUS = "alarm_status"
_VOCABULARY = {_ALARM_STATUS, *(name for names in FLAGS.values() for name in names)}


class AlarmStatusDecoder:
    """The common NB-IoT smoke-sensor object model (see the module's docstring)."""

    name = "alarm_status"

    def decode(self, fields: Mapping[str, Any], *, typed: bool) -> Decoded:
        """`typed`: the platform gives each value its JSON type (see the module's docstring)."""
        lower = {str(k).lower(): v for k, v in fields.items()}
        telemetry: dict[str, Any] = {}
        for metric, names in READINGS.items():
            value = next((lower[n] for n in names if lower.get(n) is not None), None)
            if value is not None:
                telemetry[metric] = _number(value, metric, typed=typed)
        kinds = self._status_events(lower, typed=typed) + [
            event
            for event, names in FLAGS.items()
            if any(_flag(lower.get(n), n, typed=typed) for n in names)
        ]
        if not telemetry and not _VOCABULARY & lower.keys():
            raise ValueError(f"no field the decoder knows among {sorted(fields)[:10]}")
        reading = {k: telemetry[k] for k in ("smoke", "temp_c") if k in telemetry}
        events = [{"type": kind, **reading} for kind in dict.fromkeys(kinds)]
        return Decoded(telemetry=telemetry, events=events)

    @staticmethod
    def _status_events(lower: Mapping[str, Any], *, typed: bool) -> list[str]:
        code = lower.get(_ALARM_STATUS)
        if code is None:
            return []
        if (
            not typed
            and isinstance(code, str)
            and code.strip().isascii()
            and code.strip().isdigit()
        ):
            code = int(code)
        if isinstance(code, bool) or not isinstance(code, int) or code not in ALARM_STATUS_EVENTS:
            raise ValueError(f"Alarm_Status {code!r} is not in the code table (0-6)")
        kind = ALARM_STATUS_EVENTS[code]
        return [kind] if kind else []


class NativeDecoder:
    """Devices that already speak the hub's field names (`smoke`, `temp_c`, `type`, ...)."""

    name = "native"

    def decode(self, fields: Mapping[str, Any], *, typed: bool) -> Decoded:
        # The hub's own payload models check the types, strictly, whatever the platform.
        body = dict(fields)
        kind = body.pop("type", None)
        if kind:
            return Decoded(telemetry={}, events=[{"type": kind, **body}])
        return Decoded(telemetry=body)


def _number(value: Any, metric: str, *, typed: bool) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if not typed and isinstance(value, str) and _NUMERAL.fullmatch(value.strip()):
        return float(value)
    raise ValueError(f"{metric}: {value!r} is not a number")


def _flag(value: Any, name: str, *, typed: bool) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value == 1
    if not typed and isinstance(value, str):
        return value.strip().lower() in ("1", "true", "alarm")
    raise ValueError(f"{name}: {value!r} is not 0, 1, true or false")


DECODERS: dict[str, VendorDecoder] = {d.name: d for d in (AlarmStatusDecoder(), NativeDecoder())}
DEFAULT_DECODER = "alarm_status"
