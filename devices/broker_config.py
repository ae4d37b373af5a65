"""Mosquitto password and ACL files written from the registry."""

from __future__ import annotations

import asyncio
import grp
import pwd
from dataclasses import dataclass
from pathlib import Path

from psycopg import AsyncConnection
from psycopg.rows import DictRow

from devices.credentials import hash_password
from devices.registry import broker_accounts
from hub.secret import write_private

HUB_USER = "shaobing.hub"  # a dot never appears in a device id, so no device can take this name

# The channels a device writes (design §2); `cmd` is the hub's to write, the device's to read.
DEVICE_UPLINKS = ("telemetry", "event", "status")
DEVICE_DOWNLINK = "cmd"

# Devices publish only their own uplinks and read only their own command topic; the hub reads
# every uplink and writes commands (and camera events on the cameras' behalf).
ACL = (
    "# Written by `shaobing broker-config`; regenerate instead of editing.\n"
    f"user {HUB_USER}\ntopic readwrite sb/#\ntopic read $SYS/#\n\n"
    + "".join(f"pattern write sb/+/%u/{channel}\n" for channel in DEVICE_UPLINKS)
    + f"pattern read sb/+/%u/{DEVICE_DOWNLINK}\n"
)


@dataclass(frozen=True)
class BrokerFiles:
    password_file: Path
    acl_file: Path
    accounts: int


class OwnerError(ValueError):
    """An owner that names no user or group of this machine."""


def parse_owner(text: str) -> tuple[int, int]:
    """`USER[:GROUP]` by name or number (`mosquitto`, `1883:1883`) as (uid, gid); a user
    alone brings its own group. Numbers need not exist here: the broker may be in another
    container."""
    user, _, group = text.partition(":")
    try:
        if user.isdigit():
            uid, gid = int(user), None
        else:
            record = pwd.getpwnam(user)
            uid, gid = record.pw_uid, record.pw_gid
        if group:
            gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
    except KeyError as exc:
        raise OwnerError(f"no such user or group: {text!r}") from exc
    if gid is None:
        raise OwnerError(f"a numeric user needs its group too, as UID:GID: {text!r}")
    return uid, gid


async def write_broker_files(
    conn: AsyncConnection[DictRow],
    out_dir: Path,
    *,
    hub_password: str,
    owner: tuple[int, int] | None = None,
) -> BrokerFiles:
    """Write `passwd` and `acl` into `out_dir` atomically; returns where they went. They are
    readable by their owner only: `owner` (uid, gid) makes that the broker's user, which
    mosquitto needs when it does not run as the user that writes them."""
    accounts = await broker_accounts(conn)
    return await asyncio.to_thread(_write_files, out_dir, hub_password, accounts, owner)


def _write_files(
    out_dir: Path, hub_password: str, accounts: list[tuple[str, str]], owner: tuple[int, int] | None
) -> BrokerFiles:
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = [f"{HUB_USER}:{hash_password(hub_password)}"]
    lines += [f"{user}:{hashed}" for user, hashed in accounts]
    password_file = out_dir / "passwd"
    acl_file = out_dir / "acl"
    write_private(password_file, "\n".join(lines) + "\n", owner=owner)
    write_private(acl_file, ACL, owner=owner)
    return BrokerFiles(password_file, acl_file, len(accounts))
