"""The rules the hub ships with (design §4); seeded once, then the operators' to edit.

Their names and titles are in Chinese, as a duty officer reads them; the names, in both
languages, are hub.names' (one place for each).
"""

from __future__ import annotations

from typing import Any

from hub.names import RULES
from rules.model import Rule

_BUILTIN: list[dict[str, Any]] = [
    {
        "id": "smoke-alarm",
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
            "title": "烟感报警：{site} {building} {floor}",
            "dispatch": "nearest",
        },
        "cooldown": "10m",
    },
    {
        "id": "confirmed-fire",
        # Off by default: smoke-alarm's confirmation already raises the same fire to
        # emergency, and both on would open two incidents for it. Centres that want a
        # separate incident for confirmed fires enable this and drop smoke-alarm's confirm.
        "enabled": False,
        "match": {"all": [{"kind": ["smoke_alarm"]}, {"kind": ["camera_fire", "camera_smoke"]}]},
        "threshold": {"count": 1, "within": "120s"},
        "group_by": ["building"],
        "incident": {
            "category": "fire",
            "priority": "emergency",
            "title": "火情确认：{site} {building} {floor}",
            "dispatch": "nearest",
        },
        "cooldown": "10m",
    },
    {
        "id": "camera-fire",
        # The camera already judged the scene over a window of seconds and reports one event
        # an episode: one signal is enough, so a smoke-only scene opens an incident too.
        "match": {"kind": ["camera_fire", "camera_smoke"], "where": {"min_confidence": 0.4}},
        "group_by": ["source_id"],
        "incident": {
            "category": "fire",
            "priority": "major",
            "title": "{kind_name}：{site} {building} {floor}",
            "dispatch": "nearest",
        },
        "cooldown": "10m",
    },
    {
        "id": "watchlist-hit",
        "match": {"kind": ["id_watchlist_hit"]},
        "incident": {
            "category": "security",
            "priority": "major",
            "title": "重点人员证件比中：{site}",
            "dispatch": "nearest",
        },
    },
    {
        "id": "invalid-id",
        "match": {"kind": ["id_invalid", "id_impossible_travel"]},
        "incident": {
            "category": "security",
            "priority": "routine",
            "title": "可疑证件：{site}",
        },
    },
    {
        "id": "intrusion-night",
        "match": {"kind": ["intrusion"]},
        "group_by": ["source_id", "zone"],
        "schedule": {"days": "mon-sun", "hours": "22:00-06:00", "tz": "Asia/Shanghai"},
        "incident": {
            "category": "security",
            "priority": "major",
            "title": "夜间区域入侵：{site} {zone}",
            "dispatch": "nearest",
        },
        "cooldown": "5m",
    },
    {
        "id": "crowd",
        "match": {"kind": ["crowd"]},
        "group_by": ["source_id", "zone"],
        "incident": {
            "category": "public_order",
            "priority": "major",
            "title": "人员聚集 {count} 人：{site} {zone}",
        },
        "cooldown": "15m",
    },
    {
        "id": "fall",
        "match": {"kind": ["fall"]},
        "incident": {
            "category": "medical",
            "priority": "emergency",
            "title": "人员跌倒：{site} {building} {floor}",
            "dispatch": "nearest",
        },
        "cooldown": "5m",
    },
    {
        "id": "fire-lane-blocked",
        "match": {"kind": ["fire_lane_blocked"]},  # the camera already waited its time
        "incident": {
            "category": "fire_safety",
            "priority": "routine",
            "title": "消防通道占用：{site} {building}",
        },
        "cooldown": "30m",
    },
    {
        "id": "ebike-in-elevator",
        "match": {"kind": ["ebike_in_elevator"]},
        "incident": {
            "category": "fire_safety",
            "priority": "major",
            "title": "电动车进电梯：{site} {building}",
        },
        "cooldown": "10m",
    },
    {
        "id": "device-offline",
        "match": {"kind": ["device_offline"]},
        "recover": {"kind": ["device_online"], "action": "close"},
        "incident": {
            "category": "maintenance",
            "priority": "routine",
            "title": "设备离线：{site} {building} {floor} {source_id}",
        },
        "cooldown": "1h",
    },
    {
        "id": "low-battery",
        "match": {"kind": ["battery_low"]},
        "incident": {
            "category": "maintenance",
            "priority": "routine",
            "title": "设备低电量：{site} {building} {floor} {source_id}",
        },
        "cooldown": "1d",
    },
    {
        "id": "gb-alarm-input",
        # A GB/T 28181 alarm input (smoke detector, door contact) of a camera, an alarm
        # controller or a lower platform (a community hub's forwarded alarms): 吹哨 reaches
        # the level that must act.
        "match": {"kind": ["device_alarm"]},
        "group_by": ["source_id"],
        "incident": {
            "category": "alarm",
            "priority": "major",
            "title": "{description}：{site} {building} {floor}",
            "dispatch": "nearest",
        },
    },
    {
        "id": "tamper",
        "match": {"kind": ["tamper", "camera_tamper"]},
        "incident": {
            "category": "maintenance",
            "priority": "major",
            "title": "设备被破坏：{site} {building} {floor} {source_id}",
        },
        "cooldown": "30m",
    },
]

BUILTIN_RULES: list[Rule] = [
    Rule.model_validate({**doc, "name": RULES[doc["id"]].zh}) for doc in _BUILTIN
]
