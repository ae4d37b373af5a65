"""/api/v1/devices/{id}/commands: ask a device to act (silence, self_test, reboot,
set_report_interval; a GB/T 28181 device set_guard, reset_guard, reset_alarm, reboot,
device_info, device_status) and follow its answer; and, from an incident, silence the sensors
that raised it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict

from api.auth import Principal
from api.deps import Conn, Limit, Reader
from api.openapi import refusals
from api.permissions import Capability, allowed
from devices import commands, registry
from devices.commands import Command, CommandIn, CommandName, CommandStatus, SilenceDuration, Ttl
from hub.errors import Conflict, Invalid
from incidents import store
from incidents.states import OPEN_STATUSES

router = APIRouter(tags=["commands"])
Commander = Annotated[Principal, Depends(allowed(Capability.COMMAND_DEVICES))]
CommandId = Annotated[str, Path(pattern=r"^cmd_[0-9a-f]{24}$")]
REFUSED = (
    Invalid,
    "the device cannot take this command (its type, or it talks through CTWing/OneNET), or"
    " the arguments are wrong",
)


class SilenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    duration: SilenceDuration = "30m"
    ttl: Ttl = "5m"


class Silenced(BaseModel):
    incident_id: int
    commands: list[Command]


@router.post("/devices/{device_id}/commands", status_code=202, responses=refusals(REFUSED))
async def send_command(device_id: str, body: CommandIn, who: Commander, conn: Conn) -> Command:
    """Queue a command; it is published QoS 1 on `sb/{area}/{device}/cmd` at once (a gb28181
    device's goes over SIP) and followed: `pending → sent → acked | failed | expired`."""
    async with conn.transaction():
        device = await registry.get_device(conn, device_id, scope=who.area_prefix)
        return await commands.create_command(conn, device, body, by=who.name, now=datetime.now(UTC))


@router.get("/devices/{device_id}/commands")
async def list_commands(
    device_id: str,
    who: Reader,
    conn: Conn,
    status: CommandStatus | None = None,
    limit: Limit = 100,
) -> list[Command]:
    """A device's commands, newest first."""
    await registry.get_device(conn, device_id, scope=who.area_prefix)
    return await commands.list_commands(conn, device_id, status=status, limit=limit)


@router.get("/devices/{device_id}/commands/{cmd_id}")
async def get_command(device_id: str, cmd_id: CommandId, who: Reader, conn: Conn) -> Command:
    await registry.get_device(conn, device_id, scope=who.area_prefix)
    return await commands.get_command(conn, device_id, cmd_id)


@router.post(
    "/incidents/{incident_id}/silence-sensors",
    status_code=202,
    responses=refusals(REFUSED, Conflict),
)
async def silence_sensors(
    incident_id: int, body: SilenceIn, who: Commander, conn: Conn
) -> Silenced:
    """Silence, for `duration`, the smoke sensors whose alarms this open incident holds (a
    known false alarm, or the fire is being handled): one `silence` command each, written in
    the incident's audit trail."""
    now = datetime.now(UTC)
    async with conn.transaction():
        incident = await store.get_incident(conn, incident_id, scope=who.area_prefix)
        if incident.status not in OPEN_STATUSES:
            raise Conflict("the incident is closed", field="incident_id")
        sources = await store.signal_sources(conn, incident_id, source_type="smoke_sensor")
        if not sources:
            raise Conflict("no smoke sensor raised this incident", field="incident_id")
        order = CommandIn(
            command=CommandName.SILENCE, args={"duration": body.duration}, ttl=body.ttl
        )
        # Sensors deleted or disabled since their alarm are passed over, not an error.
        devices = [
            d
            for d in await registry.devices_by_id(conn, sources, scope=who.area_prefix)
            if d.enabled
        ]
        if not devices:
            raise Conflict(
                "the sensors that raised this incident are gone or disabled", field="incident_id"
            )
        sent = [
            await commands.create_command(
                conn, d, order, by=who.name, now=now, incident_id=incident_id
            )
            for d in devices
        ]
        await store.record_audit(
            conn,
            incident_id,
            who.name,
            "silence_sensors",
            incident.status,
            incident.status,
            now,
            note=f"silenced {len(sent)} sensor(s) for {body.duration}",
            data={"commands": [c.id for c in sent], "devices": [c.device_id for c in sent]},
        )
    return Silenced(incident_id=incident_id, commands=sent)
