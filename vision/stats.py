"""Per-camera figures: rates over the last interval, kept in PostgreSQL for the API and
exported as Prometheus metrics by the worker process."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge
from psycopg import AsyncConnection
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

if TYPE_CHECKING:
    from vision.pipeline import CameraPipeline

FPS = Gauge("sb_vision_fps", "Frames per second by stage", ["camera", "stage"])
FRAMES = Counter("sb_vision_frames_total", "Frames by what happened to them", ["camera", "outcome"])
EVENTS = Counter("sb_vision_events_total", "Events published", ["camera", "type"])
RECONNECTS = Gauge(
    "sb_vision_reconnects", "Stream reconnects since the camera was claimed", ["camera"]
)
DECODE = Counter("sb_vision_decode_seconds_total", "CPU seconds spent reading streams", ["camera"])

STAGES = ("camera", "process", "skipped", "detection")


@dataclass
class _Last:
    at: float
    read: int
    analysed: int
    skipped: int
    detected: int
    dropped: int
    decode_s: float = 0.0
    undecoded: int = 0
    damaged: int = 0


@dataclass(frozen=True, slots=True)
class CameraRates:
    camera_fps: float
    process_fps: float
    skipped_fps: float
    detection_fps: float
    decode_cpu: float = 0.0  # cores spent decoding the stream
    decode_ms_per_frame: float = 0.0  # CPU per frame decoded (a frame left undecoded costs ~0)


class StatsKeeper:
    """Turns a pipeline's counters into rates each time `sample` is called."""

    def __init__(self) -> None:
        self._last: dict[str, _Last] = {}

    def sample(self, pipeline: CameraPipeline) -> CameraRates:
        cid, c, src = pipeline.camera.id, pipeline.counters, pipeline.source.counters
        now = time.monotonic()
        last = self._last.get(cid) or _Last(c.started, 0, 0, 0, 0, 0)  # since it started
        span = max(now - last.at, 1e-6)
        decoded, read = src.decode_s - last.decode_s, src.frames_read - last.read
        undecoded = src.frames_undecoded - last.undecoded
        rates = CameraRates(
            camera_fps=(read + undecoded) / span,  # what the camera sends, decoded or not
            process_fps=(c.analysed - last.analysed) / span,
            skipped_fps=(c.skipped - last.skipped) / span,
            detection_fps=(c.detected - last.detected) / span,
            decode_cpu=decoded / span,
            decode_ms_per_frame=1000 * decoded / read if read else 0.0,
        )
        DECODE.labels(cid).inc(max(decoded, 0.0))
        FRAMES.labels(cid, "read").inc(src.frames_read - last.read)
        FRAMES.labels(cid, "undecoded").inc(undecoded)
        FRAMES.labels(cid, "damaged").inc(src.decode_errors - last.damaged)
        FRAMES.labels(cid, "analysed").inc(c.analysed - last.analysed)
        FRAMES.labels(cid, "skipped").inc(c.skipped - last.skipped)
        FRAMES.labels(cid, "detected").inc(c.detected - last.detected)
        FRAMES.labels(cid, "dropped").inc(src.frames_dropped - last.dropped)
        for stage, value in zip(STAGES, _values(rates), strict=True):
            FPS.labels(cid, stage).set(round(value, 3))
        RECONNECTS.labels(cid).set(src.reconnects)
        self._last[cid] = _Last(
            now,
            src.frames_read,
            c.analysed,
            c.skipped,
            c.detected,
            src.frames_dropped,
            src.decode_s,
            src.frames_undecoded,
            src.decode_errors,
        )
        return rates

    def forget(self, camera_id: str) -> None:
        self._last.pop(camera_id, None)
        for stage in STAGES:
            FPS.remove(camera_id, stage)


def _values(rates: CameraRates) -> tuple[float, float, float, float]:
    return (rates.camera_fps, rates.process_fps, rates.skipped_fps, rates.detection_fps)


async def save(
    conn: AsyncConnection[DictRow], worker_id: str, pipeline: CameraPipeline, rates: CameraRates
) -> None:
    c, src = pipeline.counters, pipeline.source.counters
    await conn.execute(
        "INSERT INTO camera_stats (camera_id, worker_id, stream, camera_fps, process_fps,"
        " skipped_fps, detection_fps, frames_read, frames_dropped, frames_skipped, reconnects,"
        " events, line_counts, decode_cpu, decode_ms_per_frame, frames_undecoded, decoder,"
        " updated_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now())"
        " ON CONFLICT (camera_id) DO UPDATE SET worker_id = EXCLUDED.worker_id,"
        " stream = EXCLUDED.stream, camera_fps = EXCLUDED.camera_fps,"
        " process_fps = EXCLUDED.process_fps, skipped_fps = EXCLUDED.skipped_fps,"
        " detection_fps = EXCLUDED.detection_fps, frames_read = EXCLUDED.frames_read,"
        " frames_dropped = EXCLUDED.frames_dropped, frames_skipped = EXCLUDED.frames_skipped,"
        " reconnects = EXCLUDED.reconnects, events = EXCLUDED.events,"
        " line_counts = EXCLUDED.line_counts, decode_cpu = EXCLUDED.decode_cpu,"
        " decode_ms_per_frame = EXCLUDED.decode_ms_per_frame,"
        " frames_undecoded = EXCLUDED.frames_undecoded, decoder = EXCLUDED.decoder,"
        " updated_at = now()",
        (
            pipeline.camera.id,
            worker_id,
            pipeline.source.state,
            *_values(rates),
            src.frames_read,
            src.frames_dropped,
            c.skipped,
            src.reconnects,
            c.events,
            Jsonb(pipeline.line_counts),
            rates.decode_cpu,
            rates.decode_ms_per_frame,
            src.frames_undecoded,
            src.decoder,
        ),
    )


async def camera_stats(conn: AsyncConnection[DictRow], camera_id: str) -> dict[str, Any] | None:
    """The latest figures a worker saved for a camera, or None if none has run it."""
    cur = await conn.execute(
        "SELECT camera_id, worker_id, stream, camera_fps, process_fps, skipped_fps,"
        " detection_fps, frames_read, frames_dropped, frames_skipped, reconnects, events,"
        " line_counts, decode_cpu, decode_ms_per_frame, frames_undecoded, decoder, updated_at"
        " FROM camera_stats"
        " WHERE camera_id = %s",
        (camera_id,),
    )
    row = await cur.fetchone()
    return dict(row) if row else None


async def all_camera_stats(conn: AsyncConnection[DictRow]) -> list[dict[str, Any]]:
    cur = await conn.execute(
        "SELECT camera_id, stream, camera_fps, process_fps, skipped_fps, detection_fps,"
        " frames_read, frames_undecoded, frames_dropped, frames_skipped, reconnects, events,"
        " decode_cpu FROM camera_stats"
    )
    return [dict(row) for row in await cur.fetchall()]
