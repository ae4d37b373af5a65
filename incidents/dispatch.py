"""`dispatch: nearest` in one place: where an incident is (the coordinates it came with, else
those of the device whose signal opened it) and the unit proposed for it, the closest on-duty
unit that handles its category in the same district. Rule incidents, reports and residents'
reports all get their proposal here."""

from __future__ import annotations

from psycopg import AsyncConnection
from psycopg.rows import DictRow

from devices.registry import get_device
from devices.units import nearest_unit
from hub.errors import NotFound
from incidents.models import NewIncident


async def located(conn: AsyncConnection[DictRow], new: NewIncident) -> NewIncident:
    """`new` with its source device's coordinates, when its rule dispatches to the nearest
    unit and names the device (other rule incidents keep no position)."""
    if new.dispatch != "nearest" or new.source_id is None:
        return new
    try:
        device = await get_device(conn, new.source_id, scope="")
    except NotFound:
        return new
    return new.model_copy(update={"lat": device.lat, "lon": device.lon})


async def proposed_unit(
    conn: AsyncConnection[DictRow],
    *,
    category: str,
    area: str,
    lat: float | None,
    lon: float | None,
) -> str | None:
    """The closest on-duty unit for `category` in `area`'s district; None without a position."""
    if lat is None or lon is None:
        return None
    unit = await nearest_unit(conn, category=category, lat=lat, lon=lon, area_prefix=area[:6])
    return unit.id if unit else None
