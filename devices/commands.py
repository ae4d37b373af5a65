"""Commands to devices: what a duty officer may ask of a sensor (silence it, make it test
itself, reboot it, change how often it reports), and how far each request got.

The API writes a command `pending`; ingest's command sender publishes it QoS 1 on the device's
`sb/{area}/{device}/cmd` and marks it `sent`; the device's `cmd_result` event makes it `acked`
or `failed`; one nobody answered before `expires_at` becomes `expired`. A gb28181 device's
commands go over SIP from the GB/T 28181 process instead, answered by the device's Response.
Devices that talk through CTWing or OneNET are not reached this way (their platforms' command
APIs are not wired yet), so the hub refuses their commands rather than queue what it cannot
deliver.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from psycopg import AsyncConnection
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from devices.models import Device, DeviceType
from hub.durations import parse_duration, within
from hub.errors import Invalid, NotFound

COMMANDS_CHANNEL = "sb_commands"  # NOTIFY: a command is waiting to be published
# The carrier platforms a device may talk through, by the registry tag naming it there
# (devices.registry.PLATFORM_TAGS also has `imei`, which names a device, not a platform).
CARRIERS = {"ctwing_id": "CTWing", "onenet_id": "OneNET"}
MIN_TTL, MAX_TTL = timedelta(seconds=10), timedelta(hours=24)


class CommandName(StrEnum):
    SILENCE = "silence"
    SELF_TEST = "self_test"
    REBOOT = "reboot"
    SET_REPORT_INTERVAL = "set_report_interval"
    # GB/T 28181 devices (sent over SIP by the gb28181 process)
    SET_GUARD = "set_guard"
    RESET_GUARD = "reset_guard"
    RESET_ALARM = "reset_alarm"
    DEVICE_INFO = "device_info"
    DEVICE_STATUS = "device_status"


class CommandStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    ACKED = "acked"
    FAILED = "failed"
    EXPIRED = "expired"


Ttl = Annotated[
    str,
    within(MIN_TTL, MAX_TTL),
    Field(description="how long the command stays worth carrying out (10s to 24h)"),
]


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NoArgs(_Args):
    """`self_test` and `reboot` take no arguments."""


SilenceDuration = Annotated[
    str,
    within(timedelta(minutes=1), timedelta(hours=24)),
    Field(description="how long the sounder stays quiet (1m to 24h)"),
]


class SilenceArgs(_Args):
    duration: SilenceDuration = "30m"


class ReportIntervalArgs(_Args):
    seconds: Annotated[int, Field(ge=10, le=86_400, description="between telemetry reports")]


ARGS: dict[CommandName, type[_Args]] = {
    CommandName.SILENCE: SilenceArgs,
    CommandName.SELF_TEST: NoArgs,
    CommandName.REBOOT: NoArgs,
    CommandName.SET_REPORT_INTERVAL: ReportIntervalArgs,
    CommandName.SET_GUARD: NoArgs,
    CommandName.RESET_GUARD: NoArgs,
    CommandName.RESET_ALARM: NoArgs,
    CommandName.DEVICE_INFO: NoArgs,
    CommandName.DEVICE_STATUS: NoArgs,
}
GB_COMMANDS = frozenset(
    {
        CommandName.SET_GUARD,
        CommandName.RESET_GUARD,
        CommandName.RESET_ALARM,
        CommandName.REBOOT,
        CommandName.DEVICE_INFO,
        CommandName.DEVICE_STATUS,
    }
)
ACCEPTED_BY: dict[DeviceType, frozenset[CommandName]] = {
    DeviceType.SMOKE_SENSOR: frozenset(
        {
            CommandName.SILENCE,
            CommandName.SELF_TEST,
            CommandName.REBOOT,
            CommandName.SET_REPORT_INTERVAL,
        }
    ),
    DeviceType.ID_READER: frozenset(
        {CommandName.SELF_TEST, CommandName.REBOOT, CommandName.SET_REPORT_INTERVAL}
    ),
    DeviceType.GB28181: GB_COMMANDS,
}


class CommandIn(BaseModel):
    """`POST /api/v1/devices/{id}/commands`. `args` by command: `silence` {"duration": "30m"},
    `set_report_interval` {"seconds": 300}, `self_test` and `reboot` none."""

    model_config = ConfigDict(extra="forbid")

    command: CommandName
    args: Annotated[dict[str, Any], Field(max_length=8)] = Field(default_factory=dict)
    ttl: Ttl = "5m"

    def checked_args(self) -> dict[str, Any]:
        """The arguments as the command's model reads them, defaults filled in; 422 else."""
        try:
            return ARGS[self.command].model_validate(self.args).model_dump()
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in ("args", *first["loc"]))
            raise Invalid(f"{where}: {first['msg']}", field=where) from None


class Command(BaseModel):
    id: str
    device_id: str
    area: str
    command: CommandName
    args: dict[str, Any]
    status: CommandStatus
    detail: str | None
    created_by: str
    incident_id: int | None
    created_at: datetime
    expires_at: datetime
    sent_at: datetime | None
    answered_at: datetime | None

    def downlink(self) -> dict[str, Any]:
        """What the device reads on its `cmd` topic."""
        return {
            "cmd_id": self.id,
            "command": self.command.value,
            "args": self.args,
            "expires_at": self.expires_at.isoformat(),
        }


_COLUMNS = (
    "id, device_id, area, command, args, status, detail, created_by, incident_id, created_at,"
    " expires_at, sent_at, answered_at"
)


def check_commandable(device: Device, command: CommandName) -> None:
    """422 for a device that cannot take this command from the hub, saying why."""
    if not device.enabled:
        why = (
            "the hub does not let it register"
            if device.type is DeviceType.GB28181
            else "the broker does not let it in"
        )
        raise Invalid(f"device {device.id} is disabled: {why}", field="command")
    carrier = next((name for tag, name in CARRIERS.items() if tag in device.tags), None)
    if carrier is not None:
        raise Invalid(
            f"device {device.id} talks through {carrier}; the hub does not send"
            " commands through carrier platforms",
            field="command",
        )
    accepted = ACCEPTED_BY.get(device.type, frozenset())
    if command not in accepted:
        raise Invalid(
            f"a {device.type.value} does not take {command.value!r}"
            f" (it takes: {', '.join(sorted(accepted)) or 'none'})",
            field="command",
        )


async def create_command(
    conn: AsyncConnection[DictRow],
    device: Device,
    body: CommandIn,
    *,
    by: str,
    now: datetime,
    incident_id: int | None = None,
) -> Command:
    """Queue a command for the sender (woken by NOTIFY at commit)."""
    check_commandable(device, body.command)
    args = body.checked_args()
    cur = await conn.execute(
        "INSERT INTO device_commands (id, device_id, area, command, args, created_by,"
        " incident_id, created_at, expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
        f" RETURNING {_COLUMNS}",
        (
            "cmd_" + secrets.token_hex(12),
            device.id,
            device.area,
            body.command.value,
            Jsonb(args),
            by,
            incident_id,
            now,
            now + parse_duration(body.ttl),
        ),
    )
    await conn.execute("SELECT pg_notify(%s, '')", (COMMANDS_CHANNEL,))
    return Command.model_validate(await cur.fetchone())


async def list_commands(
    conn: AsyncConnection[DictRow],
    device_id: str,
    *,
    status: CommandStatus | None = None,
    limit: int = 100,
) -> list[Command]:
    """A device's commands, newest first."""
    cur = await conn.execute(
        f"SELECT {_COLUMNS} FROM device_commands WHERE device_id = %s"
        " AND (%s::text IS NULL OR status = %s) ORDER BY created_at DESC, id LIMIT %s",
        (device_id, status, status, limit),
    )
    return [Command.model_validate(row) for row in await cur.fetchall()]


async def get_command(conn: AsyncConnection[DictRow], device_id: str, cmd_id: str) -> Command:
    cur = await conn.execute(
        f"SELECT {_COLUMNS} FROM device_commands WHERE device_id = %s AND id = %s",
        (device_id, cmd_id),
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"command {cmd_id} not found")
    return Command.model_validate(row)


async def take_pending(
    conn: AsyncConnection[DictRow], now: datetime, *, limit: int = 100, gb28181: bool = False
) -> list[Command]:
    """Pending commands still worth sending, oldest first, locked for this transaction (another
    sender skips them): those of gb28181 devices (sent over SIP), or those of the others (over
    MQTT)."""
    cur = await conn.execute(
        f"SELECT {_COLUMNS} FROM device_commands c WHERE status = 'pending' AND expires_at > %s"
        " AND (EXISTS (SELECT 1 FROM devices d WHERE d.id = c.device_id"
        "              AND d.type = 'gb28181')) = %s"
        " ORDER BY created_at, id LIMIT %s FOR UPDATE OF c SKIP LOCKED",
        (now, gb28181, limit),
    )
    return [Command.model_validate(row) for row in await cur.fetchall()]


async def mark_sent(conn: AsyncConnection[DictRow], ids: Sequence[str], now: datetime) -> None:
    await conn.execute(
        "UPDATE device_commands SET status = 'sent', sent_at = %s"
        " WHERE id = ANY(%s) AND status = 'pending'",
        (now, list(ids)),
    )


async def expire_unanswered(conn: AsyncConnection[DictRow], now: datetime) -> int:
    """Commands in flight whose time ran out: `expired`; how many."""
    cur = await conn.execute(
        "UPDATE device_commands SET status = 'expired', detail = CASE status"
        " WHEN 'pending' THEN 'never delivered: the hub could not publish it in time'"
        " ELSE 'no answer from the device in time' END"
        " WHERE status IN ('pending', 'sent') AND expires_at <= %s",
        (now,),
    )
    return cur.rowcount


@dataclass(frozen=True, slots=True)
class CommandResult:
    """A device's `cmd_result` event."""

    device_id: str
    cmd_id: str
    ok: bool
    detail: str | None
    at: datetime


async def record_results(conn: AsyncConnection[DictRow], results: Sequence[CommandResult]) -> int:
    """Acked or failed, for commands in flight that belong to the answering device; a late
    answer (after expiry), a repeat or another device's claim changes nothing. How many did."""
    changed = 0
    for result in results:
        cur = await conn.execute(
            "UPDATE device_commands SET status = %s, detail = %s, answered_at = %s"
            " WHERE id = %s AND device_id = %s AND status IN ('pending', 'sent')",
            (
                "acked" if result.ok else "failed",
                result.detail,
                result.at,
                result.cmd_id,
                result.device_id,
            ),
        )
        changed += cur.rowcount
    return changed
