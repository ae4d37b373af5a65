"""GB/T 28181 identifiers: 20 digits, `CCCCCCCC II TTT NNNNNNN` (centre code, industry,
type, serial). The type code (digits 11 to 13) says what the thing is. Kept with the registry,
which checks the id of a `gb28181` device when it is registered."""

from __future__ import annotations

import re

_ID = re.compile(r"^\d{20}$")

# Type codes (GB/T 28181-2022 appendix E) the hub knows by name.
TYPE_NAMES = {
    "111": "dvr",
    "112": "video_server",
    "113": "encoder",
    "114": "decoder",
    "115": "video_switch",
    "116": "audio_switch",
    "117": "alarm_controller",
    "118": "nvr",
    "130": "hvr",
    "131": "ipc",
    "132": "ipc",  # network camera with a built-in encoder (球机/枪机)
    "133": "display",
    "134": "alarm_input",
    "135": "alarm_output",
    "136": "audio_input",
    "137": "audio_output",
    "138": "mobile",
    "139": "other_peripheral",
    "200": "platform",
    "215": "business_group",
    "216": "virtual_organisation",
}
# Channel types that carry video (they become cameras).
VIDEO_TYPES = frozenset({"131", "132", "111", "112", "113", "118", "130"})
ALARM_INPUT = "134"
# Device types for which SetGuard is sent after registration unless the device says otherwise.
GUARD_BY_DEFAULT = frozenset({"131", "132"})


def is_gb_id(value: str) -> bool:
    return bool(_ID.match(value))


def type_code(gb_id: str) -> str:
    """Digits 11 to 13."""
    return gb_id[10:13]


def check_gb_id(value: str) -> str:
    """A valid 20-digit GB ID whose type code the hub knows; ValueError otherwise."""
    if not is_gb_id(value):
        raise ValueError("a GB/T 28181 id is 20 digits")
    code = type_code(value)
    if code not in TYPE_NAMES:
        raise ValueError(
            f"type code {code} (digits 11-13) is not a GB/T 28181 device type"
            " (IPC 131/132, NVR 118, DVR 111, alarm controller 117, platform 200...)"
        )
    return value


def is_video_channel(channel_id: str) -> bool:
    return is_gb_id(channel_id) and type_code(channel_id) in VIDEO_TYPES
