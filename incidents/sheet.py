"""Statistics as a CSV sheet (the monthly 考核 sheet): one row per group, UTF-8 with a BOM so
that spreadsheet programs read the Chinese names, and no cell a spreadsheet would run."""

from __future__ import annotations

import csv
import io
from typing import Any

from incidents.models import Flag
from incidents.stats import GroupStats, Stats
from incidents.summon_stats import UnitStats

FLAGS: tuple[Flag, ...] = ("not_reported", "late", "shirking", "repeat")
LEVELS = ("emergency", "major", "routine")
_UNIT_COLUMNS = (
    "key",
    "name",
    "summoned",
    "reported",
    "reported_on_time",
    "on_time_rate",
    "resolved",
    "mean_rating",
    "rated",
)
_GROUP_COLUMNS = (
    "key",
    "total",
    "accept_determined",
    "accepted_on_time",
    "on_time_accept_rate",
    "close_determined",
    "closed_on_time",
    "closure_rate",
    "accept_mean_s",
    "close_mean_s",
    "mean_rating",
)
_AREA_COLUMNS = ("mean_whistle_rating", "satisfaction")


def _cell(value: Any) -> str:
    """A number as Python writes it; text that a spreadsheet would take for a formula, quoted."""
    if value is None:
        return ""
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".")
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _unit_row(group: UnitStats) -> list[str]:
    data = group.model_dump()
    return [_cell(data[c]) for c in _UNIT_COLUMNS] + [str(group.flags.get(f, 0)) for f in FLAGS]


def _group_row(group: GroupStats, with_whistles: bool) -> list[str]:
    data = group.model_dump()
    row = [_cell(data[c]) for c in _GROUP_COLUMNS]
    if with_whistles:
        whistles = group.whistles or {}
        row += [str(whistles.get(level, 0)) for level in LEVELS]
        row += [_cell(data[c]) for c in _AREA_COLUMNS]
    return row


def stats_sheet(stats: Stats) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    if stats.group_by == "unit":
        writer.writerow([*_UNIT_COLUMNS, *(f"flags_{f}" for f in FLAGS)])
        writer.writerows(_unit_row(g) for g in stats.groups if isinstance(g, UnitStats))
    else:
        area = stats.group_by == "area"
        extra = [*(f"whistles_{level}" for level in LEVELS), *_AREA_COLUMNS] if area else []
        writer.writerow([*_GROUP_COLUMNS, *extra])
        writer.writerows(_group_row(g, area) for g in stats.groups if isinstance(g, GroupStats))
    return "\ufeff" + out.getvalue()
