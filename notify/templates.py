"""What a notification says: per kind of message a title and a Markdown body, in Chinese by
default and in English, with placeholders an operator may rearrange (`/api/v1/templates`)."""

from __future__ import annotations

import string
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from hub.names import AUDIT_ENTRIES, CATEGORIES, PRIORITIES, STATUSES, floor_name, name_of
from hub.text import PlainText
from hub.times import hub_zone
from incidents.models import Incident

MessageKind = Literal[
    "incident.created",
    "incident.updated",
    "incident.escalated",
    "incident.repeat",
    "incident.dispatched",
    "incident.summoned",
    "incident.summon_overdue",
    "incident.rating_due",
    "group",
    "test",
]

PLACEHOLDERS = {
    "incident_id",
    "title",
    "whistle",
    "priority",
    "priority_label",
    "status",
    "status_label",
    "category",
    "category_label",
    "place",
    "area",
    "site",
    "building",
    "floor",
    "created_at",
    "accept_by",
    "resolve_by",
    "signal_count",
    "action",
    "action_label",
    "escalated_to",
    "unit",
    "link",
    "api_link",
    "evidence_line",
    "map_line",
    "unit_link",
    "count",
    "lines",
    "channel",
    "report_by",
    "units",
}

_WHISTLE = {"emergency": "🔴", "major": "🟠", "routine": "🔵"}
# What a message's links are called; every code's name comes from hub.names.
_LINK_WORDS = {
    "zh-CN": {"evidence": "现场图片", "map": "地图"},
    "en": {"evidence": "picture", "map": "map"},
}

_DETAILS_ZH = (
    "> 地点：{place}\n> 时间：{created_at}\n> 状态：{status_label}\n"
    "> 受理时限：{accept_by}　办结时限：{resolve_by}\n\n[查看事件]({link}){evidence_line}{map_line}"
)
_DETAILS_EN = (
    "> Place: {place}\n> Time: {created_at}\n> Status: {status_label}\n"
    "> Accept by: {accept_by}  Resolve by: {resolve_by}\n\n[Open]({link}){evidence_line}{map_line}"
)
DEFAULTS: dict[tuple[str, str], tuple[str, str]] = {
    ("incident.created", "zh-CN"): (
        "{whistle}【{priority_label}】{title}",
        "### {whistle}【{priority_label}】{title}\n" + _DETAILS_ZH,
    ),
    ("incident.updated", "zh-CN"): (
        "【{action_label}】{title}",
        "### 【{action_label}】{title}\n" + _DETAILS_ZH,
    ),
    ("incident.escalated", "zh-CN"): (
        "⏫【超时升级至 {escalated_to}】{title}",
        "### ⏫【超时升级至 {escalated_to}】{title}\n" + _DETAILS_ZH,
    ),
    ("incident.repeat", "zh-CN"): (
        "⏰【仍未受理】{title}",
        "### ⏰【仍未受理】{whistle} {title}\n" + _DETAILS_ZH,
    ),
    ("incident.dispatched", "zh-CN"): (
        "🚒【派遣】{unit}：{title}",
        "### 🚒【派遣】{unit}：{title}\n"
        + _DETAILS_ZH
        + "\n\n[收到 / 到场 / 处置完毕]({unit_link})",
    ),
    ("incident.summoned", "zh-CN"): (
        "📯【吹哨报到】{unit}：{title}",
        "### 📯【吹哨报到】{unit}：{title}\n> 报到时限：{report_by}\n"
        + _DETAILS_ZH
        + "\n\n[报到 / 收到]({unit_link})",
    ),
    ("incident.summon_overdue", "zh-CN"): (
        "⏰【督办：超时未报到】{unit}：{title}",
        "### ⏰【督办：超时未报到】{unit}：{title}\n> 报到时限：{report_by}\n" + _DETAILS_ZH,
    ),
    ("incident.rating_due", "zh-CN"): (
        "📝【待评价：一案一评】{title}",
        "### 📝【待评价：一案一评】{title}\n> 待评价部门：{units}\n" + _DETAILS_ZH,
    ),
    ("group", "zh-CN"): ("{count} 条事件通知", "### {count} 条事件通知\n{lines}"),
    ("test", "zh-CN"): ("哨兵测试消息", "### 哨兵测试消息\n通道 {channel} 已接通。"),
    ("incident.created", "en"): (
        "{whistle} [{priority_label}] {title}",
        "### {whistle} [{priority_label}] {title}\n" + _DETAILS_EN,
    ),
    ("incident.updated", "en"): (
        "[{action_label}] {title}",
        "### [{action_label}] {title}\n" + _DETAILS_EN,
    ),
    ("incident.escalated", "en"): (
        "⏫ [escalated to {escalated_to}] {title}",
        "### ⏫ [escalated to {escalated_to}] {title}\n" + _DETAILS_EN,
    ),
    ("incident.repeat", "en"): (
        "⏰ [still not accepted] {title}",
        "### ⏰ [still not accepted] {whistle} {title}\n" + _DETAILS_EN,
    ),
    ("incident.dispatched", "en"): (
        "🚒 [dispatched] {unit}: {title}",
        "### 🚒 [dispatched] {unit}: {title}\n"
        + _DETAILS_EN
        + "\n\n[Acknowledge / on site / resolved]({unit_link})",
    ),
    ("incident.summoned", "en"): (
        "📯 [summoned] {unit}: {title}",
        "### 📯 [summoned] {unit}: {title}\n> Report in by: {report_by}\n"
        + _DETAILS_EN
        + "\n\n[Report in / acknowledge]({unit_link})",
    ),
    ("incident.summon_overdue", "en"): (
        "⏰ [overdue: not reported in] {unit}: {title}",
        "### ⏰ [overdue: not reported in] {unit}: {title}\n> Report in by: {report_by}\n"
        + _DETAILS_EN,
    ),
    ("incident.rating_due", "en"): (
        "📝 [rating due] {title}",
        "### 📝 [rating due] {title}\n> Departments to rate: {units}\n" + _DETAILS_EN,
    ),
    ("group", "en"): (
        "{count} incident notifications",
        "### {count} incident notifications\n{lines}",
    ),
    ("test", "en"): (
        "Shaobing test message",
        "### Shaobing test message\nChannel {channel} works.",
    ),
}


def placeholders_of(text: str) -> set[str]:
    try:
        return {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
    except ValueError as exc:
        raise ValueError(str(exc)) from None


class TemplateIn(BaseModel):
    title: PlainText = Field(min_length=1, max_length=300)
    body: PlainText = Field(min_length=1, max_length=4000)

    @model_validator(mode="after")
    def _known_placeholders(self) -> TemplateIn:
        for name in ("title", "body"):
            unknown = placeholders_of(getattr(self, name)) - PLACEHOLDERS
            if unknown:
                raise ValueError(
                    f"{name} uses unknown placeholder(s) {sorted(unknown)};"
                    f" known: {sorted(PLACEHOLDERS)}"
                )
        return self


class Template(TemplateIn):
    kind: MessageKind
    language: Literal["zh-CN", "en"]
    custom: bool = Field(description="an operator's wording (false: the built-in one)")


@dataclass(frozen=True, slots=True)
class Links:
    """Addresses a message points at, under SB_PUBLIC_URL."""

    public_url: str

    def incident(self, incident_id: int) -> str:
        """The console's page of the incident: a person opens it in a browser, which asks for
        a token first and then shows the incident."""
        return f"{self.public_url}/incidents/{incident_id}"

    def api_incident(self, incident_id: int) -> str:
        """The incident in the JSON API, for scripts with a Bearer token."""
        return f"{self.public_url}/api/v1/incidents/{incident_id}"

    def evidence(self, evidence_id: str) -> str:
        return f"{self.public_url}/api/v1/evidence/{evidence_id}"

    def unit(self, token: str) -> str:
        return f"{self.public_url}/u/{token}"


def local_time(at: datetime) -> str:
    """Wall-clock time where the hub is (SB_TIMEZONE), as people read it in a message."""
    return at.astimezone(hub_zone()).strftime("%Y-%m-%d %H:%M")


def incident_fields(
    incident: Incident, language: str, links: Links, **extra: Any
) -> dict[str, Any]:
    """Every placeholder's value for one incident (missing extras render empty)."""
    place = (
        " ".join(p for p in (incident.site, incident.building, floor_name(incident.floor)) if p)
        or incident.area
    )
    # The incident's evidence lists its signals; a camera's carries its picture's id.
    evidence = next(
        (
            str(e["evidence"])
            for e in incident.evidence
            if isinstance(e, dict) and e.get("evidence")
        ),
        None,
    )
    words = _LINK_WORDS[language]
    evidence_line = f"\n[{words['evidence']}]({links.evidence(evidence)})" if evidence else ""
    map_line = ""
    if incident.lat is not None and incident.lon is not None:
        amap = (
            f"https://uri.amap.com/marker?position={incident.lon},{incident.lat}&coordinate=wgs84"
        )
        map_line = f"\n[{words['map']}]({amap})"
    action = extra.get("action") or ""
    fields: dict[str, Any] = {name: "" for name in PLACEHOLDERS}
    fields.update(
        incident_id=incident.id,
        title=incident.title,
        whistle=_WHISTLE[incident.priority.value],
        priority=incident.priority.value,
        priority_label=name_of(PRIORITIES, incident.priority.value, language),
        status=incident.status.value,
        status_label=name_of(STATUSES, incident.status.value, language),
        category=incident.category,
        category_label=name_of(CATEGORIES, incident.category, language),
        place=place,
        area=incident.area,
        site=incident.site or "",
        building=incident.building or "",
        floor=floor_name(incident.floor),
        created_at=local_time(incident.created_at),
        accept_by=local_time(incident.accept_by),
        resolve_by=local_time(incident.resolve_by),
        signal_count=incident.signal_count,
        action_label=name_of(AUDIT_ENTRIES, action, language),
        escalated_to=incident.escalated_to or "",
        link=links.incident(incident.id),
        api_link=links.api_incident(incident.id),
        evidence_line=evidence_line,
        map_line=map_line,
    )
    fields.update({k: v for k, v in extra.items() if k in PLACEHOLDERS})
    return fields


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return ""


def render(title: str, body: str, fields: dict[str, Any]) -> tuple[str, str]:
    """A placeholder without a value here (a group has no `place`) renders empty."""
    values = _Blank(fields)
    return title.format_map(values), body.format_map(values)
