"""A vision worker: claims cameras, analyses them, stores evidence and publishes events.

Inference runs in a thread (`Analyser.step`) so that lease heartbeats, evidence rows and MQTT
publishing stay on the event loop and a slow batch never lets a lease lapse.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

from psycopg import AsyncConnection
from psycopg.rows import DictRow

from devices.cameras import enabled_cameras
from devices.models import Camera
from hub.db import connect
from hub.logs import get_logger
from hub.settings import Settings
from vision import evidence, evidence_store, leases, stats
from vision.detector import Detector, Model
from vision.inference_server import Address, remote_models
from vision.model_slot import ModelSlot
from vision.pipeline import Analyser, Gating, Models, Outcome
from vision.publisher import Publisher
from vision.status import missing_models

log = get_logger(__name__)


def load_models(settings: Settings) -> Models:
    """The detector, and the fire and pose models when configured."""
    device = settings.vision_device
    fire = Detector(settings.fire_model, device=device) if settings.fire_model else None
    pose = (
        Detector(settings.pose_model, task="pose", device=device) if settings.pose_model else None
    )
    detector: Model
    if settings.vision_inference == "tensor":
        from vision.inference import TensorDetector  # torch: only a worker that asks loads it

        detector = TensorDetector(settings.yolo_model, device=device)
    else:
        detector = Detector(settings.yolo_model, device=device)
    return Models(detector, fire, pose)


def model_slot(settings: Settings, server: Address | None = None) -> ModelSlot:
    """The settings' models, loaded when a camera first needs them; or, with `server`, those
    of the machine's inference process."""
    if server is not None:
        return ModelSlot(lambda: remote_models(server), describe=f"served at {server.path}")
    named = [settings.yolo_model, settings.fire_model, settings.pose_model]
    return ModelSlot(lambda: load_models(settings), describe=", ".join(m for m in named if m))


@dataclass(frozen=True, slots=True)
class WorkerTiming:
    stats_every_s: float = 5.0
    telemetry_every_s: float = 30.0  # also the camera's heartbeat for device health
    idle_sleep_s: float = 0.02


class VisionWorker:
    def __init__(
        self,
        settings: Settings,
        models: ModelSlot,
        *,
        worker_id: str | None = None,
        gating: Gating | None = None,
        timing: WorkerTiming | None = None,
    ) -> None:
        assert settings.database_url and settings.mqtt
        self.settings = settings
        self.id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.models = models
        self.gating = gating or Gating()
        self.analyser: Analyser | None = None  # made once the models are loaded
        self.timing = timing or WorkerTiming()
        self.lease = timedelta(seconds=settings.vision_lease_s)
        self.desired: dict[str, Camera] = {}
        self.keeper = stats.StatsKeeper()
        self.publisher = Publisher(settings.mqtt, mqtt_v5=settings.mqtt_protocol == "5")

    async def run(self, stop: asyncio.Event) -> None:
        assert self.settings.database_url
        conn = await connect(self.settings.database_url)
        lease_conn = await connect(self.settings.database_url)
        log.info("vision worker started", worker=self.id)
        heartbeats = asyncio.create_task(self._heartbeats(lease_conn, stop))
        try:
            await self._analyse(conn, stop)
        finally:
            heartbeats.cancel()
            await asyncio.gather(heartbeats, return_exceptions=True)
            if self.analyser is not None:
                self.analyser.close()
            await leases.retire(lease_conn, self.id)
            await lease_conn.commit()
            await asyncio.to_thread(self.publisher.close)
            await conn.close()
            await lease_conn.close()
            log.info("vision worker stopped", worker=self.id)

    async def _heartbeats(self, conn: AsyncConnection[DictRow], stop: asyncio.Event) -> None:
        """Claim cameras only with models in hand: a worker that cannot analyse holds none,
        and is not counted in the fair share, so any worker that can takes them all. It is
        listed all the same, with what stops it, so that the hub can say vision is off."""
        while not stop.is_set():
            cameras = await enabled_cameras(conn)
            await conn.commit()
            if cameras and self.analyser is None:
                await self._start_analyser(conn)
            if self.analyser is None:
                problem = self.models.problem or missing_models(self.settings)
                await leases.waiting_worker(
                    conn, self.id, socket.gethostname(), os.getpid(), problem, self.lease
                )
                await conn.commit()
            else:
                held = await leases.heartbeat(conn, self.id, [c.id for c in cameras], self.lease)
                await conn.commit()
                self.desired = {c.id: c for c in cameras if c.id in held}
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.lease.total_seconds() / 3)

    async def _start_analyser(self, conn: AsyncConnection[DictRow]) -> None:
        models = await self.models.get()
        if models is None:
            return
        await leases.register_worker(conn, self.id, socket.gethostname(), os.getpid())
        await conn.commit()
        self.analyser = Analyser(models, self.gating, decoder=self.settings.vision_decoder)

    async def _analyse(self, conn: AsyncConnection[DictRow], stop: asyncio.Event) -> None:
        next_stats = next_telemetry = time.monotonic()
        while not stop.is_set():
            if self.analyser is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.5)
                continue
            self._follow_leases(self.analyser)
            frames, outcomes = await asyncio.to_thread(self.analyser.step)
            for outcome in outcomes:
                await self._emit(conn, outcome)
            now = time.monotonic()
            if now >= next_stats:
                await self._save_stats(self.analyser, conn, telemetry=now >= next_telemetry)
                if now >= next_telemetry:
                    next_telemetry = now + self.timing.telemetry_every_s
                next_stats = now + self.timing.stats_every_s
            if frames == 0:
                await asyncio.sleep(self.timing.idle_sleep_s)

    def _follow_leases(self, analyser: Analyser) -> None:
        """Start cameras newly held or reconfigured; stop those no longer held."""
        running = analyser.pipelines
        for camera_id in [cid for cid in running if cid not in self.desired]:
            analyser.remove(camera_id)
            self.keeper.forget(camera_id)
            log.info("camera released", camera=camera_id, worker=self.id)
        for camera_id, camera in self.desired.items():
            current = running.get(camera_id)
            if current is not None and current.camera == camera:
                continue
            if current is not None:
                analyser.remove(camera_id)
            try:
                analyser.add(camera)
            except ValueError as exc:  # a zone stored before its params were checked
                log.error("camera config rejected", camera=camera_id, error=str(exc))
                continue
            self.publisher.publish(camera.area, camera_id, "status", {"online": True}, retain=True)
            log.info("camera claimed", camera=camera_id, worker=self.id)

    async def _emit(self, conn: AsyncConnection[DictRow], outcome: Outcome) -> None:
        """Store the evidence first, so the event never names a picture that is not there."""
        evidence_id = None
        if outcome.picture is not None:
            path = await asyncio.to_thread(
                evidence.write_file, self.settings.data_dir, outcome.picture
            )
            await evidence_store.record(
                conn,
                outcome.picture,
                path,
                camera_id=outcome.camera_id,
                area=outcome.area,
                event=outcome.event,
            )
            await conn.commit()
            evidence_id = outcome.picture.id
        body = outcome.event.payload(self.publisher.next_seq(), evidence_id)
        self.publisher.publish(outcome.area, outcome.camera_id, "event", body)
        stats.EVENTS.labels(outcome.camera_id, outcome.event.type).inc()
        event = outcome.event
        log.info(
            "camera event",
            camera=outcome.camera_id,
            type=event.type,
            zone=event.zone,
            track=event.track_id,
            evidence=evidence_id,
        )

    async def _save_stats(
        self, analyser: Analyser, conn: AsyncConnection[DictRow], *, telemetry: bool
    ) -> None:
        for pipeline in analyser.pipelines.values():
            rates = self.keeper.sample(pipeline)
            await stats.save(conn, self.id, pipeline, rates)
            if telemetry:
                body = {
                    "seq": self.publisher.next_seq(),
                    "ts": int(time.time() * 1000),
                    "fps": round(rates.camera_fps, 2),
                    "process_fps": round(rates.process_fps, 2),
                    "skipped_fps": round(rates.skipped_fps, 2),
                }
                self.publisher.publish(pipeline.camera.area, pipeline.camera.id, "telemetry", body)
        await conn.commit()
