"""What an upper platform sees: the uplink's area as a catalog, organised as GB/T 28181 asks.

One business group (type 215) per uplink; under it a virtual organisation (type 216) for each
area of the scope (district → street → community), with its civil code; under each, the
area's cameras (their own 20-digit ids, or the hub's `gb_channel_id` for cameras registered
by stream address) and its alarm inputs (type 134: sensors, and the alarm inputs of the GB
devices and lower platforms registered with the hub).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

from psycopg import AsyncConnection
from psycopg.rows import DictRow

from devices.areas import areas_around
from devices.registry import device_refs, enabled_devices
from hub.area_codes import parent_code
from ingest.state_reads import states_of

_TWENTY_DIGITS = re.compile(r"[0-9]{20}")
PAGE = 8  # items per Response MESSAGE: well inside a UDP datagram with Chinese names
_TYPE_NAMES = {"smoke_sensor": "烟感", "id_reader": "身份证读卡器", "camera": "摄像机"}
_MANUFACTURER = "Shaobing"


@dataclass(frozen=True, slots=True)
class Item:
    """One catalog entry; `fields` in the order they are written."""

    id: str
    fields: tuple[tuple[str, str], ...]

    @property
    def status(self) -> str:
        return dict(self.fields).get("Status", "")

    def xml(self, event: str | None = None) -> str:
        parts = [f"<DeviceID>{self.id}</DeviceID>"]
        parts += [f"<{tag}>{escape(value)}</{tag}>" for tag, value in self.fields]
        if event:
            parts.append(f"<Event>{event}</Event>")
        return "<Item>\r\n" + "\r\n".join(parts) + "\r\n</Item>\r\n"


def business_group_id(local_id: str) -> str:
    return f"{local_id[:10]}2150000001"


def organisation_id(area_code: str) -> str:
    """Stable and unique per area: 8 digits of the code, industry 00, type 216, a serial that
    says the level and the code's digits past the eighth."""
    level = {4: "0", 6: "0", 9: "1", 12: "2"}[len(area_code)]
    return area_code[:8].ljust(8, "0") + "00216" + (level + area_code[8:]).ljust(7, "0")


def civil_code(area_code: str) -> str:
    """GB/T 2260 as GB/T 28181 writes it: 4 (city), 6 (district) or 8 digits (street and
    community: the basic unit)."""
    return area_code if len(area_code) <= 6 else area_code[:8]


async def scope_items(
    conn: AsyncConnection[DictRow], local_id: str, area_prefix: str
) -> list[Item]:
    """The whole catalog of a scope, organisations first, in a stable order."""
    group = business_group_id(local_id)
    items = [Item(group, (("Name", "哨兵"), ("ParentID", local_id)))]
    areas = await _areas(conn, area_prefix)
    known = {row["code"] for row in areas}
    for row in areas:
        parent = parent_code(row["code"])
        items.append(_organisation(row, group, parent if parent in known else None))
    channels = await _devices(conn, area_prefix) + await _lower_inputs(conn, area_prefix)
    items += [_channel(row, group, known) for row in channels]
    return items


async def _areas(conn: AsyncConnection[DictRow], prefix: str) -> list[dict[str, Any]]:
    """The scope's areas, and the areas the scope lies in (an uplink for one street still
    shows its district above it)."""
    return [{"code": area.code, "name": area.name} for area in await areas_around(conn, prefix)]


async def _devices(conn: AsyncConnection[DictRow], prefix: str) -> list[dict[str, Any]]:
    """The scope's devices that have a channel id: their own 20-digit id, or the hub's."""
    rows = [
        {
            "id": d.id,
            "type": d.type.value,
            "area": d.area,
            "site": d.site,
            "building": d.building,
            "lat": d.lat,
            "lon": d.lon,
            "tags": d.tags,
            "channel_id": d.id if _TWENTY_DIGITS.fullmatch(d.id) else d.gb_channel_id,
        }
        for d in await enabled_devices(conn, prefix, but=("gb28181",))
    ]
    rows = [row for row in rows if row["channel_id"]]
    states = await states_of(conn, [str(row["id"]) for row in rows])
    return [{**row, "online": states[str(row["id"])].online} for row in rows]


async def _lower_inputs(conn: AsyncConnection[DictRow], prefix: str) -> list[dict[str, Any]]:
    """Alarm inputs of GB devices and lower platforms registered with the hub."""
    cur = await conn.execute(
        "SELECT channel_id, device_id, name, status FROM gb28181_alarm_inputs ORDER BY channel_id"
    )
    inputs = await cur.fetchall()
    holders = await device_refs(conn, sorted({i["device_id"] for i in inputs}), scope=prefix)
    enabled = {d.id: d for d in holders if d.enabled}
    states = await states_of(conn, list(enabled))
    return [
        {
            "id": i["channel_id"],
            "type": "alarm_input",
            "area": d.area,
            "site": d.site,
            "building": d.building,
            "lat": None,
            "lon": None,
            "tags": {"gb_name": i["name"], "gb_status": i["status"]},
            "channel_id": i["channel_id"],
            "online": states[d.id].online,
        }
        for i in inputs
        if (d := enabled.get(i["device_id"])) is not None
    ]


def _organisation(row: dict[str, Any], group: str, parent: str | None) -> Item:
    code = str(row["code"])
    return Item(
        organisation_id(code),
        (
            ("Name", str(row["name"])),
            ("ParentID", organisation_id(parent) if parent else group),
            ("BusinessGroupID", group),
            ("CivilCode", civil_code(code)),
        ),
    )


def _channel(row: dict[str, Any], group: str, areas: set[str]) -> Item:
    tags: dict[str, Any] = row["tags"] or {}
    area = str(row["area"])
    holder = area
    while holder not in areas and parent_code(holder):
        holder = parent_code(holder) or holder
    status = tags.get("gb_status") if row["type"] == "alarm_input" else None
    online = str(status).upper() in ("ON", "OK", "ONLINE") if status else bool(row["online"])
    fields = [
        ("Name", _name(row, tags)),
        ("Manufacturer", str(tags.get("gb_manufacturer") or tags.get("vendor") or _MANUFACTURER)),
        ("Model", str(tags.get("gb_model") or tags.get("model") or row["type"])),
        ("Owner", "Owner"),
        ("CivilCode", civil_code(area)),
        ("Address", " ".join(str(p) for p in (row["site"], row["building"]) if p) or area),
        ("Parental", "0"),
        ("ParentID", organisation_id(holder) if holder in areas else group),
        ("BusinessGroupID", group),
        ("SafetyWay", "0"),
        ("RegisterWay", "1"),
        ("Secrecy", "0"),
        ("Status", "ON" if online else "OFF"),
    ]
    if row["lon"] is not None and row["lat"] is not None:
        fields += [("Longitude", f"{row['lon']:.6f}"), ("Latitude", f"{row['lat']:.6f}")]
    return Item(str(row["channel_id"]), tuple(fields))


def _name(row: dict[str, Any], tags: dict[str, Any]) -> str:
    given = tags.get("gb_name") or tags.get("name")
    if given:
        return str(given)[:100]
    kind = _TYPE_NAMES.get(str(row["type"]), "报警输入")
    where = " ".join(str(p) for p in (row["site"], row["building"]) if p)
    return f"{kind} {where}".strip()[:100] if where else f"{kind} {row['id']}"[:100]


def pages(items: list[Item], size: int = PAGE) -> list[list[Item]]:
    return [items[i : i + size] for i in range(0, len(items), size)] or [[]]


def response_body(
    cmd: str,
    sn: str,
    local_id: str,
    total: int,
    page: list[Item],
    root: str = "Response",
    event: str | None = None,
) -> bytes:
    """A Catalog Response (or Notify) MESSAGE's body, in GB2312 (as GB18030, its superset)."""
    listed = "".join(item.xml(event) for item in page)
    text = (
        f'<?xml version="1.0" encoding="GB2312"?>\r\n<{root}>\r\n<CmdType>{cmd}</CmdType>\r\n'
        f"<SN>{escape(sn)}</SN>\r\n<DeviceID>{local_id}</DeviceID>\r\n<SumNum>{total}</SumNum>\r\n"
        f'<DeviceList Num="{len(page)}">\r\n{listed}</DeviceList>\r\n</{root}>\r\n'
    )
    return text.encode("gb18030")
