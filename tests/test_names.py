"""Every code has a zh-CN and an English name in one place (hub.names), which the API serves
and the notifier and console use."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx

from devices.models import DeviceType, UnitKind
from hub.contracts import KINDS, Priority
from hub.names import (
    ACTIONS,
    AUDIT_ENTRIES,
    CATEGORIES,
    CLOSE_REASONS,
    DEVICE_TYPES,
    PRIORITIES,
    RULES,
    STATUSES,
    UNIT_KINDS,
    VOCABULARIES,
    floor_name,
)
from hub.names import KINDS as KIND_NAMES
from incidents.states import Action, CloseReason, Status
from rules.builtin import BUILTIN_RULES

ROOT = Path(__file__).resolve().parent.parent
COMMUNITY = "440311001002"


def test_every_enum_value_and_known_code_has_both_names() -> None:
    expected: list[tuple[dict[str, Any], set[str]]] = [
        (PRIORITIES, {p.value for p in Priority}),
        (STATUSES, {s.value for s in Status}),
        (CLOSE_REASONS, {r.value for r in CloseReason}),
        (ACTIONS, {a.value for a in Action}),
        (AUDIT_ENTRIES, {a.value for a in Action} | audit_entries_in_code()),
        (DEVICE_TYPES, {t.value for t in DeviceType}),
        (UNIT_KINDS, {k.value for k in UnitKind}),
        (KIND_NAMES, set(KINDS)),
        (RULES, {r.id for r in BUILTIN_RULES}),
        (CATEGORIES, {r.incident.category for r in BUILTIN_RULES} | public_form_categories()),
    ]
    for vocabulary, codes in expected:
        assert codes <= set(vocabulary), codes - set(vocabulary)
    for vocabulary in VOCABULARIES.values():
        for code, name in vocabulary.items():
            assert name.zh and name.en, code
            assert re.search(r"[\u4e00-\u9fff]", name.zh), (code, name.zh)
    assert [PRIORITIES[p].zh for p in ("emergency", "major", "routine")] == [
        "应急哨",
        "攻坚哨",
        "日常哨",
    ]


def audit_entries_in_code() -> set[str]:
    """What the hub itself writes into incidents' audit trails (besides the actions)."""
    found: set[str] = set()
    for path in (ROOT / "incidents").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        found.update(re.findall(r"'shaobing', '([a-z_]+)'", text))
        found.update(re.findall(r'"shaobing",\s*"([a-z_]+)"', text))
        found.update(re.findall(r'record_audit\(\s*conn,\s*[\w.]+,\s*[\w.]+,\s*"([a-z_]+)"', text))
    assert {"report", "attach", "escalate", "recover"} <= found  # the search still finds them
    return found


def public_form_categories() -> set[str]:
    page = (ROOT / "api" / "public_page.html").read_text(encoding="utf-8")
    return set(re.findall(r'<option value="([a-z_]+)">', page))


def test_built_in_rules_are_named_and_titled_in_chinese() -> None:
    for rule in BUILTIN_RULES:
        assert rule.name == RULES[rule.id].zh
        # What it says (a kind's name, say) and then where: no English word of its own.
        what, _, where = rule.incident.title.partition("：")
        assert where and re.search(r"[\u4e00-\u9fff]|\{kind_name\}|\{description\}", what)
        assert not re.search(r"[A-Za-z]", re.sub(r"\{\w+\}", "", rule.incident.title)), rule.id


def test_a_floor_reads_as_people_say_it() -> None:
    assert [floor_name(f) for f in ("3", "-1", "B1", "天台", None, "")] == [
        "3层",
        "地下1层",
        "B1",
        "天台",
        "",
        "",
    ]


def test_the_api_serves_the_names_to_everyone_who_reads_incidents(
    admin: httpx.Client, client_for: Any
) -> None:
    for client in (admin, client_for("viewer", COMMUNITY), client_for("grid_worker", COMMUNITY)):
        answer = client.get("/api/v1/names")
        assert answer.status_code == 200, answer.text
        names = answer.json()
        assert names["zh-CN"]["priorities"] == {
            "emergency": "应急哨",
            "major": "攻坚哨",
            "routine": "日常哨",
        }
        assert names["zh-CN"]["categories"]["fire_safety"] == "消防隐患"
        assert names["en"]["kinds"]["smoke_alarm"] == "smoke alarm"
        assert set(names["zh-CN"]) == set(VOCABULARIES) == set(names["en"])
    assert httpx.get(str(admin.base_url) + "/api/v1/names").status_code == 401
