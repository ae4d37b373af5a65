"""Whether vision is analysing, and why not: from the workers' own rows, for `/readyz`,
camera stats, the console and device health (a camera is only expected to be heard while a
worker analyses it)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from psycopg import AsyncConnection
from psycopg.rows import DictRow
from pydantic import BaseModel, ConfigDict, Field

from hub.settings import Settings

NO_WORKER = "no vision worker is running (shaobing vision, or SB_VISION_WORKERS for shaobing up)"


class VisionState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: Literal["analysing", "idle", "off"] = Field(
        title="State",
        description="analysing: a worker has its models; idle: workers wait for a camera"
        " (models load when one needs them); off: no worker can analyse",
    )
    reason: str | None = Field(
        default=None, title="Reason", max_length=2000, description="why vision is off"
    )
    workers: int = Field(title="Workers", ge=0, description="live vision workers")


def missing_models(settings: Settings) -> str | None:
    """Why the configured models cannot be loaded, seen without loading them: a path that
    does not exist. (A bare name such as yolov8n.pt may still be downloaded; its failure is
    known when a camera first needs it.)"""
    named = (
        ("SB_YOLO_MODEL", settings.yolo_model),
        ("SB_FIRE_MODEL", settings.fire_model),
        ("SB_POSE_MODEL", settings.pose_model),
    )
    missing = [
        f"{setting} {name} does not exist"
        for setting, name in named
        if name and Path(name).parent != Path(".") and not Path(name).exists()
    ]
    return "; ".join(missing) or None


async def vision_state(
    conn: AsyncConnection[DictRow],
    lease: timedelta,
    *,
    host: str | None = None,
    pids: list[int] | None = None,
) -> VisionState:
    """The state of the live workers (heard within a lease): all of them, or those of one
    process tree (`host` and the workers' `pids`)."""
    cur = await conn.execute(
        "SELECT analysing, problem FROM vision_workers"
        " WHERE heartbeat_at > now() - %s::interval"
        " AND (%s::text IS NULL OR host = %s) AND (%s::int[] IS NULL OR pid = ANY(%s))"
        " ORDER BY started_at",
        (lease, host, host, pids, pids),
    )
    rows = await cur.fetchall()
    if any(row["analysing"] for row in rows):
        return VisionState(state="analysing", workers=len(rows))
    if any(row["problem"] is None for row in rows):
        return VisionState(state="idle", workers=len(rows))
    problems = list(dict.fromkeys(row["problem"] for row in rows))
    reason = "; ".join(problems)[:2000] if problems else NO_WORKER
    return VisionState(state="off", reason=reason, workers=len(rows))


async def watched_cameras(conn: AsyncConnection[DictRow]) -> dict[str, datetime]:
    """Cameras a live worker with its models holds, with when it took each: only these are
    expected to be heard (the worker is what reports them), from then on; the others wait
    for vision, they are not offline."""
    cur = await conn.execute(
        "SELECT l.camera_id, l.claimed_at FROM camera_leases l"
        " JOIN vision_workers w ON w.id = l.worker_id"
        " WHERE l.expires_at > now() AND w.analysing AND l.claimed_at IS NOT NULL"
    )
    return {row["camera_id"]: row["claimed_at"] for row in await cur.fetchall()}
