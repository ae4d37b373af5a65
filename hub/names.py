"""What each code is called, in zh-CN and in English: one place for each name, which the API
serves (`GET /api/v1/names`), the console shows and the notifier writes, so that a message, an
export and the screen say the same thing.

Kept in the kernel, by code (the string each enum or rule stores), so that every package may
use it; a test checks that every value of the domain enums and every built-in rule, kind and
category has both names.
"""

from __future__ import annotations

import re
from typing import Literal, NamedTuple

Language = Literal["zh-CN", "en"]
LANGUAGES: tuple[Language, ...] = ("zh-CN", "en")


class Name(NamedTuple):
    zh: str
    en: str

    def in_(self, language: str) -> str:
        return self.en if language == "en" else self.zh


# The three whistles (hub.contracts.Priority).
PRIORITIES = {
    "emergency": Name("应急哨", "Emergency"),
    "major": Name("攻坚哨", "Major"),
    "routine": Name("日常哨", "Routine"),
}

# Incident states (incidents.states.Status).
STATUSES = {
    "reported": Name("待受理", "reported"),
    "accepted": Name("已受理", "accepted"),
    "dispatched": Name("已派遣", "dispatched"),
    "handling": Name("处置中", "handling"),
    "resolved": Name("已处置", "resolved"),
    "verified": Name("已核查", "verified"),
    "closed": Name("已结案", "closed"),
}

# Why an incident was closed (incidents.states.CloseReason).
CLOSE_REASONS = {
    "resolved": Name("已解决", "resolved"),
    "false_alarm": Name("误报", "false alarm"),
    "duplicate": Name("重复", "duplicate"),
    "not_responsible": Name("非本单位职责", "not ours"),
}

# What a person does on an incident, as a button says it (incidents.states.Action).
ACTIONS = {
    "accept": Name("受理", "Accept"),
    "dispatch": Name("派遣", "Dispatch"),
    "start": Name("到场处置", "On site"),
    "resolve": Name("处置完毕", "Resolved"),
    "verify": Name("核查通过", "Verify"),
    "reject": Name("核查不通过", "Send back"),
    "close": Name("结案", "Close"),
    "rate": Name("评价", "Rate"),
    "comment": Name("备注", "Comment"),
    "acknowledge": Name("已收到", "Acknowledge"),
    "summon": Name("吹哨", "Summon"),
    "report_in": Name("报到", "Report in"),
    "rate_unit": Name("评价部门", "Rate department"),
    "flag_unit": Name("记负面清单", "Negative list"),
    "rate_whistle": Name("评价吹哨", "Rate whistle"),
}

# What an incident's audit trail (its timeline) and its update messages say happened: every
# action, in the past tense, and what the hub itself records.
AUDIT_ENTRIES = {
    "accept": Name("已受理", "accepted"),
    "dispatch": Name("已派遣", "dispatched"),
    "start": Name("已到场处置", "on site"),
    "resolve": Name("已处置完毕", "resolved"),
    "verify": Name("核查通过", "verified"),
    "reject": Name("核查未通过，退回处置", "sent back"),
    "close": Name("已结案", "closed"),
    "rate": Name("已评价", "rated"),
    "comment": Name("备注", "comment"),
    "acknowledge": Name("处置单位已收到", "acknowledged by the unit"),
    "summon": Name("已吹哨", "departments summoned"),
    "report_in": Name("已报到", "reported in"),
    "rate_unit": Name("已评价部门", "department rated"),
    "flag_unit": Name("已记负面清单", "negative list"),
    "rate_whistle": Name("部门已评价吹哨", "whistle rated"),
    "report": Name("事件上报", "reported"),
    "attach": Name("有新的信号", "new signals"),
    "raise_priority": Name("已升级哨别", "whistle raised"),
    "recover": Name("设备已恢复", "device back"),
    "escalate": Name("超时升级", "escalated"),
    "summon_overdue": Name("超时未报到", "not reported in"),
}

# Incident categories: the built-in rules' and the public intake form's.
CATEGORIES = {
    "fire": Name("火警", "fire"),
    "fire_safety": Name("消防隐患", "fire safety"),
    "security": Name("治安防范", "security"),
    "public_order": Name("治安问题", "public order"),
    "medical": Name("医疗救助", "medical"),
    "maintenance": Name("设备运维", "maintenance"),
    "alarm": Name("报警", "alarm"),
    "environment": Name("环境卫生", "environment"),
    "facilities": Name("设施损坏", "facilities"),
    "public_safety": Name("公共安全", "public safety"),
    "building_safety": Name("房屋安全", "building safety"),
    "other": Name("其他", "other"),
}

# What a registered device is (devices.models.DeviceType).
DEVICE_TYPES = {
    "smoke_sensor": Name("烟感", "smoke sensor"),
    "id_reader": Name("身份证阅读器", "ID reader"),
    "camera": Name("摄像头", "camera"),
    "gb28181": Name("国标设备", "GB/T 28181 device"),
}

# Who a unit is (devices.models.UnitKind).
UNIT_KINDS = {
    "grid_worker": Name("网格员", "grid worker"),
    "police": Name("派出所", "police"),
    "fire": Name("消防", "fire brigade"),
    "property": Name("物业", "property management"),
    "medical": Name("医疗急救", "medical"),
    "emergency_unit": Name("应急队伍", "emergency unit"),
    "department": Name("职能部门", "department"),
}

# Every signal kind (hub.contracts.KINDS); also the start of a built-in rule's title.
KINDS = {
    "smoke_alarm": Name("烟感报警", "smoke alarm"),
    "smoke_alarm_cleared": Name("烟感解除", "smoke alarm cleared"),
    "tamper": Name("防拆报警", "tamper"),
    "battery_low": Name("低电量", "low battery"),
    "device_fault": Name("设备故障", "device fault"),
    "smoke_test": Name("烟感测试", "smoke test"),
    "intrusion": Name("区域入侵", "intrusion"),
    "loitering": Name("人员徘徊", "loitering"),
    "crowd": Name("人员聚集", "crowd"),
    "camera_fire": Name("视频识别明火", "fire seen by a camera"),
    "camera_smoke": Name("视频识别烟雾", "smoke seen by a camera"),
    "fall": Name("人员跌倒", "person down"),
    "fire_lane_blocked": Name("消防通道占用", "fire lane blocked"),
    "ebike_in_elevator": Name("电动车进电梯", "e-bike in elevator"),
    "camera_tamper": Name("摄像头遮挡", "camera tampered with"),
    "stream_lost": Name("视频中断", "stream lost"),
    "stream_restored": Name("视频恢复", "stream restored"),
    "line_crossing": Name("越线计数", "line crossing"),
    "motion": Name("移动侦测", "motion"),
    "object_left": Name("物品遗留", "object left"),
    "object_removed": Name("物品移除", "object removed"),
    "video_loss": Name("视频丢失", "video loss"),
    "device_alarm": Name("设备报警", "device alarm"),
    "device_offline": Name("设备离线", "device offline"),
    "device_online": Name("设备上线", "device online"),
    "id_watchlist_hit": Name("重点人员比中", "watch-list hit"),
    "id_invalid": Name("证件无效", "invalid ID card"),
    "id_expired": Name("证件过期", "expired ID card"),
    "id_impossible_travel": Name("证件轨迹异常", "impossible travel"),
    "id_unregistered": Name("未登记人员", "unregistered person"),
}

# The built-in rules (rules.builtin), by id.
RULES = {
    "smoke-alarm": Name(
        "烟感报警（同楼摄像头见烟火时升为应急哨）",
        "Smoke alarm (emergency when a camera in the building sees smoke or fire)",
    ),
    "confirmed-fire": Name(
        "烟感与视频火情同楼确认（单独立案）",
        "Smoke alarm and camera fire in the same building (separate incident)",
    ),
    "camera-fire": Name(
        "摄像头发现烟火（确认前为攻坚哨）",
        "A camera sees fire or smoke (stays major until confirmed)",
    ),
    "watchlist-hit": Name("重点人员证件比中", "A watch-listed ID card was read"),
    "invalid-id": Name("可疑证件", "A card with an impossible ID number was read"),
    "intrusion-night": Name("夜间区域入侵", "Intrusion into a restricted zone at night"),
    "crowd": Name("人员聚集", "Crowd gathering"),
    "fall": Name("人员跌倒", "A person fell"),
    "fire-lane-blocked": Name("消防通道被占用", "Fire lane blocked by a vehicle"),
    "ebike-in-elevator": Name("电动车进电梯", "E-bike taken into an elevator"),
    "device-offline": Name("设备离线", "A device went offline"),
    "low-battery": Name("设备低电量", "A device's battery is low"),
    "gb-alarm-input": Name(
        "国标报警输入或下级平台报警", "A GB/T 28181 alarm input or a lower platform's alarm"
    ),
    "tamper": Name("设备或摄像头被破坏", "A device or camera was tampered with"),
}

# Each vocabulary under the key the API serves it by.
VOCABULARIES: dict[str, dict[str, Name]] = {
    "priorities": PRIORITIES,
    "statuses": STATUSES,
    "close_reasons": CLOSE_REASONS,
    "actions": ACTIONS,
    "audit_entries": AUDIT_ENTRIES,
    "categories": CATEGORIES,
    "device_types": DEVICE_TYPES,
    "unit_kinds": UNIT_KINDS,
    "kinds": KINDS,
    "rules": RULES,
}


def name_of(vocabulary: dict[str, Name], code: str, language: str = "zh-CN") -> str:
    """The code's name in `language`; the code itself where it has none (an operator's own
    category, a kind a newer device sends)."""
    found = vocabulary.get(code)
    return found.in_(language) if found else code


def in_language(language: Language) -> dict[str, dict[str, str]]:
    """Every vocabulary in one language: code → name."""
    return {
        key: {code: name.in_(language) for code, name in vocabulary.items()}
        for key, vocabulary in VOCABULARIES.items()
    }


_STOREY = re.compile(r"-?[0-9]{1,3}")


def floor_name(floor: str | None) -> str:
    """A floor as people say it: a bare number is a storey (`3` → 3层, `-1` → 地下1层); a
    label the registry gave (`B1`, `3F`, `天台`) stays as it is."""
    if not floor:
        return ""
    text = floor.strip()
    if _STOREY.fullmatch(text):
        number = int(text)
        return f"地下{-number}层" if number < 0 else f"{number}层"
    return text
