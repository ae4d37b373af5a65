"""/api/v1/gb/uplinks: the upper platforms the hub registers to (admin; by area). The password
is written and never read back; each uplink's `status` is what the GB process last knew."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from psycopg import AsyncConnection
from psycopg.rows import DictRow
from pydantic import BaseModel, Field

from api.auth import Principal
from api.deps import Conn
from api.openapi import refusals
from api.permissions import Capability, allowed
from gb28181.cascade import store
from gb28181.cascade.models import Uplink, UplinkIn
from hub.errors import Conflict, Invalid
from hub.secret import hmac_key

router = APIRouter(prefix="/gb/uplinks", tags=["gb28181"])
Admin = Annotated[Principal, Depends(allowed(Capability.MANAGE_UPLINKS))]


class DeliveryRow(BaseModel):
    incident_id: int | None = Field(title="the incident sent up (null: a signal)")
    signal_id: int | None = Field(title="the signal sent up on its own (null: an incident)")
    channel_id: str
    state: str
    attempts: int
    last_status: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


def _key(request: Request) -> bytes:
    return hmac_key(request.app.state.settings)


@router.post("", status_code=201, responses=refusals(Conflict))
async def create_uplink(body: UplinkIn, who: Admin, conn: Conn, request: Request) -> Uplink:
    who.require_area(body.area_prefix)
    async with conn.transaction():
        return await store.create_uplink(conn, body, _key(request))


@router.get("")
async def list_uplinks(who: Admin, conn: Conn) -> list[Uplink]:
    return await store.list_uplinks(conn, scope=who.area_prefix)


@router.get("/{uplink_id}")
async def get_uplink(uplink_id: str, who: Admin, conn: Conn) -> Uplink:
    return await store.get_uplink(conn, uplink_id, scope=who.area_prefix)


@router.put("/{uplink_id}", responses=refusals(Conflict))
async def replace_uplink(
    uplink_id: str, body: UplinkIn, who: Admin, conn: Conn, request: Request
) -> Uplink:
    """Store the new document; leave `password` out to keep the one stored."""
    if body.id != uplink_id:
        raise Invalid(f"the document's id {body.id!r} is not {uplink_id!r}", field="body.id")
    who.require_area(body.area_prefix)
    async with conn.transaction():
        return await store.replace_uplink(conn, body, _key(request), scope=who.area_prefix)


@router.delete("/{uplink_id}", status_code=204)
async def delete_uplink(uplink_id: str, who: Admin, conn: Conn) -> Response:
    async with conn.transaction():
        await store.delete_uplink(conn, uplink_id, scope=who.area_prefix)
    return Response(status_code=204)


@router.get("/{uplink_id}/deliveries")
async def deliveries(
    uplink_id: str, who: Admin, conn: Conn, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[DeliveryRow]:
    """The delivery log: the latest alarms sent to this uplink, newest first."""
    await store.get_uplink(conn, uplink_id, scope=who.area_prefix)
    rows: list[dict[str, Any]] = await store.delivery_log(conn, uplink_id, limit)
    return [DeliveryRow.model_validate(row) for row in rows]


async def metrics_text(conn: AsyncConnection[DictRow]) -> bytes:
    """Each uplink's status for /metrics: registered, last keepalive answered, alarms
    forwarded and failed (as the GB process last wrote them)."""
    registered = GaugeMetricFamily(
        "sb_gb_uplink_registered", "Registered to the upper platform", labels=["uplink"]
    )
    keepalive = GaugeMetricFamily(
        "sb_gb_uplink_last_keepalive_seconds",
        "Unix time of the last keepalive the upper answered",
        labels=["uplink"],
    )
    alarms = CounterMetricFamily(
        "sb_gb_uplink_alarms", "Alarms sent to the upper platform", labels=["uplink", "outcome"]
    )
    for row in await store.all_status(conn):
        registered.add_metric([row["id"]], 1.0 if row["registered"] else 0.0)
        at = row["last_keepalive"]
        keepalive.add_metric([row["id"]], at.timestamp() if at else 0.0)
        alarms.add_metric([row["id"], "forwarded"], float(row["forwarded"]))
        alarms.add_metric([row["id"], "failed"], float(row["failed"]))
    return generate_latest(_Fixed([registered, keepalive, alarms]))


class _Fixed(Collector):
    def __init__(self, metrics: list[Metric]) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return self.metrics
