"""The rules the hub ships with (design §4); seeded once, then the operators' to edit."""

from __future__ import annotations

from typing import Any

from rules.model import Rule

_BUILTIN: list[dict[str, Any]] = [
    {
        "id": "smoke-alarm",
        "name": "Smoke alarm (emergency when a camera in the building sees smoke or fire)",
        "match": {"kind": ["smoke_alarm"]},
        "group_by": ["building"],
        "confirm": {
            "kind": ["camera_smoke", "camera_fire"],
            "within": "120s",
            "same": "building",
            "priority": "emergency",
        },
        "incident": {
            "category": "fire",
            "priority": "major",
            "title": "Smoke alarm at {site} {building}",
            "dispatch": "nearest",
        },
        "cooldown": "10m",
    },
    {
        "id": "confirmed-fire",
        # Off by default: smoke-alarm's confirmation already raises the same fire to
        # emergency, and both on would open two incidents for it. Centres that want a
        # separate incident for confirmed fires enable this and drop smoke-alarm's confirm.
        "name": "Smoke alarm and camera fire in the same building (separate incident)",
        "enabled": False,
        "match": {"all": [{"kind": ["smoke_alarm"]}, {"kind": ["camera_fire", "camera_smoke"]}]},
        "threshold": {"count": 1, "within": "120s"},
        "group_by": ["building"],
        "incident": {
            "category": "fire",
            "priority": "emergency",
            "title": "Fire confirmed at {site} {building}",
            "dispatch": "nearest",
        },
        "cooldown": "10m",
    },
    {
        "id": "camera-fire",
        # The camera already judged the scene over a window of seconds and reports one event
        # an episode: one signal is enough, so a smoke-only scene opens an incident too.
        "name": "A camera sees fire or smoke (stays major until confirmed)",
        "match": {"kind": ["camera_fire", "camera_smoke"], "where": {"min_confidence": 0.4}},
        "group_by": ["source_id"],
        "incident": {
            "category": "fire",
            "priority": "major",
            "title": "Camera {source_id} sees {kind} at {site}",
            "dispatch": "nearest",
        },
        "cooldown": "10m",
    },
    {
        "id": "watchlist-hit",
        "name": "A watch-listed ID card was read",
        "match": {"kind": ["id_watchlist_hit"]},
        "incident": {
            "category": "security",
            "priority": "major",
            "title": "Watch-list card read at {site}",
            "dispatch": "nearest",
        },
    },
    {
        "id": "invalid-id",
        "name": "A card with an impossible ID number was read",
        "match": {"kind": ["id_invalid", "id_impossible_travel"]},
        "incident": {
            "category": "security",
            "priority": "routine",
            "title": "Suspicious ID card at {site}",
        },
    },
    {
        "id": "intrusion-night",
        "name": "Intrusion into a restricted zone at night",
        "match": {"kind": ["intrusion"]},
        "group_by": ["source_id", "zone"],
        "schedule": {"days": "mon-sun", "hours": "22:00-06:00", "tz": "Asia/Shanghai"},
        "incident": {
            "category": "security",
            "priority": "major",
            "title": "Intrusion at {site} ({zone})",
            "dispatch": "nearest",
        },
        "cooldown": "5m",
    },
    {
        "id": "crowd",
        "name": "Crowd gathering",
        "match": {"kind": ["crowd"]},
        "group_by": ["source_id", "zone"],
        "incident": {
            "category": "public_order",
            "priority": "major",
            "title": "Crowd of {count} at {site} ({zone})",
        },
        "cooldown": "15m",
    },
    {
        "id": "fall",
        "name": "A person fell",
        "match": {"kind": ["fall"]},
        "incident": {
            "category": "medical",
            "priority": "emergency",
            "title": "Person down at {site} {building}",
            "dispatch": "nearest",
        },
        "cooldown": "5m",
    },
    {
        "id": "fire-lane-blocked",
        "name": "Fire lane blocked by a vehicle",
        "match": {"kind": ["fire_lane_blocked"]},  # the camera already waited its time
        "incident": {
            "category": "fire_safety",
            "priority": "routine",
            "title": "Fire lane blocked at {site}",
        },
        "cooldown": "30m",
    },
    {
        "id": "ebike-in-elevator",
        "name": "E-bike taken into an elevator",
        "match": {"kind": ["ebike_in_elevator"]},
        "incident": {
            "category": "fire_safety",
            "priority": "major",
            "title": "E-bike in elevator at {site} {building}",
        },
        "cooldown": "10m",
    },
    {
        "id": "device-offline",
        "name": "A device went offline",
        "match": {"kind": ["device_offline"]},
        "recover": {"kind": ["device_online"], "action": "close"},
        "incident": {
            "category": "maintenance",
            "priority": "routine",
            "title": "Device {source_id} offline at {site}",
        },
        "cooldown": "1h",
    },
    {
        "id": "low-battery",
        "name": "A device's battery is low",
        "match": {"kind": ["battery_low"]},
        "incident": {
            "category": "maintenance",
            "priority": "routine",
            "title": "Low battery: {source_id} at {site}",
        },
        "cooldown": "1d",
    },
    {
        "id": "gb-alarm-input",
        # A GB/T 28181 alarm input (smoke detector, door contact) of a camera, an alarm
        # controller or a lower platform (a community hub's forwarded alarms): 吹哨 reaches
        # the level that must act.
        "name": "A GB/T 28181 alarm input or a lower platform's alarm",
        "match": {"kind": ["device_alarm"]},
        "group_by": ["source_id"],
        "incident": {
            "category": "alarm",
            "priority": "major",
            "title": "{description} {site} {building}",
            "dispatch": "nearest",
        },
    },
    {
        "id": "tamper",
        "name": "A device or camera was tampered with",
        "match": {"kind": ["tamper", "camera_tamper"]},
        "incident": {
            "category": "maintenance",
            "priority": "major",
            "title": "Tampering with {source_id} at {site}",
        },
        "cooldown": "30m",
    },
]

BUILTIN_RULES: list[Rule] = [Rule.model_validate(doc) for doc in _BUILTIN]
