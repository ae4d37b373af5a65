"""One camera's analysis state, and the engine that steps many cameras with batched inference."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from devices.models import Camera
from vision.analytics.fall import Fall
from vision.analytics.fire import FireConfig, FireSmoke
from vision.analytics.tamper import Tamper
from vision.analytics.zones import Analytic, LineCrossing, analytics_for
from vision.capture import Frame, FrameSource, open_source
from vision.detector import Detections, Detector
from vision.events import Event
from vision.evidence import Picture, render
from vision.masks import drop_masked
from vision.motion import MotionConfig, MotionDetector
from vision.tracking import CameraTracker, Track


@dataclass(frozen=True, slots=True)
class Models:
    detector: Detector
    fire: Detector | None = None
    pose: Detector | None = None


@dataclass(frozen=True, slots=True)
class Gating:
    refresh_s: float = 5.0  # detect at least this often even in a still scene


@dataclass(slots=True)
class CameraCounters:
    started: float = field(default_factory=time.monotonic)  # rates start from here
    analysed: int = 0  # frames the analyser took
    skipped: int = 0  # of those, frames where motion gating spared the detector
    detected: int = 0  # frames the detector ran on
    events: int = 0


@dataclass(slots=True)
class Outcome:
    """An event ready to publish, with its picture when a frame shows it."""

    camera_id: str
    area: str
    event: Event
    picture: Picture | None


class CameraPipeline:
    """Source, motion gate, tracker and analytics of one camera."""

    def __init__(
        self, camera: Camera, models: Models, gating: Gating, source: FrameSource | None = None
    ) -> None:
        self.camera = camera
        self.gating = gating
        self.source = source or open_source(camera.stream_url, camera.fps)
        settings = camera.settings
        self.settings = settings
        self.motion = MotionDetector(
            MotionConfig(threshold=settings.motion.threshold,
                         contour_area=settings.motion.contour_area),
            settings.motion.masks,
        )  # fmt: skip
        self.tracker = CameraTracker(models.detector.names, camera.fps)
        self.zones: list[Analytic] = [a for z in camera.zones for a in analytics_for(z)]
        self.fire = (
            FireSmoke(models.fire.names, FireConfig(interval_s=settings.analytics.fire_interval_s))
            if models.fire and settings.analytics.fire
            else None
        )
        self.fall = Fall() if models.pose and settings.analytics.falls else None
        self.tamper = Tamper() if settings.analytics.tamper else None
        self.counters = CameraCounters()
        self.last_detect = float("-inf")
        self.last_motion = float("-inf")

    @property
    def tracks(self) -> list[Track]:
        return list(self.tracker.tracks.values())

    @property
    def line_counts(self) -> dict[str, dict[str, int]]:
        return {a.name: dict(a.counts) for a in self.zones if isinstance(a, LineCrossing)}

    def stream_events(self) -> list[Event]:
        return [Event(c.type, c.ts, reason=c.reason) for c in self.source.changes()]

    def needs_detection(self, frame: Frame) -> bool:
        """Tamper and motion bookkeeping for the frame; whether the detector must see it."""
        self.counters.analysed += 1
        moving = self.motion.update(frame.image) > 0.0
        if moving:
            self.last_motion = frame.ts
        since = frame.ts - self.last_detect
        due = since >= self.gating.refresh_s
        paced = self.settings.detect_fps is None or since >= 1.0 / self.settings.detect_fps
        if (moving or due) and paced:
            return True
        self.counters.skipped += 1
        return False

    def tamper_events(self, frame: Frame) -> list[Event]:
        return self.tamper.update(frame.ts, frame.image) if self.tamper else []

    def detected(self, frame: Frame, dets: Detections) -> None:
        self.counters.detected += 1
        self.last_detect = frame.ts
        height, width = frame.image.shape[:2]
        kept = drop_masked(dets, self.settings.object_masks, height, width)
        self.tracker.update(kept, (height, width), frame.ts)

    def zone_events(self, frame: Frame) -> list[Event]:
        tracks = self.tracks
        return [e for analytic in self.zones for e in analytic.update(frame.ts, tracks)]

    def wants_fire_model(self, frame: Frame) -> bool:
        if self.fire is None or not self.fire.due(frame.ts):
            return False
        recent_motion = frame.ts - self.last_motion <= self.fire.config.interval_s * 2
        return recent_motion or frame.ts - self.fire.last_run >= self.gating.refresh_s

    def wants_pose_model(self, frame: Frame) -> bool:
        if self.fall is None:
            return False
        return bool(self.fall.candidates(self.tracks, frame.image.shape[:2], frame.ts))

    def fall_events(self, frame: Frame, pose: Detections | None) -> list[Event]:
        if self.fall is None:
            return []
        return self.fall.update(frame.ts, self.tracks, pose, frame.image.shape[:2])

    def fire_events(self, frame: Frame, dets: Detections) -> list[Event]:
        assert self.fire is not None
        return self.fire.update(frame.ts, dets, frame.image.shape[:2])

    def close(self) -> None:
        self.source.close()


@dataclass
class Engine:
    """Steps every camera once: frames that need it go through each model in one batch."""

    models: Models
    gating: Gating = field(default_factory=Gating)
    pipelines: dict[str, CameraPipeline] = field(default_factory=dict)

    def add(self, camera: Camera, source: FrameSource | None = None) -> CameraPipeline:
        pipeline = CameraPipeline(camera, self.models, self.gating, source)
        self.pipelines[camera.id] = pipeline
        return pipeline

    def remove(self, camera_id: str) -> None:
        pipeline = self.pipelines.pop(camera_id, None)
        if pipeline:
            pipeline.close()

    def close(self) -> None:
        for camera_id in list(self.pipelines):
            self.remove(camera_id)

    @property
    def finished(self) -> bool:
        """Every source is a replayed file that has ended (tests and benchmarks stop here)."""
        return all(p.source.state == "ended" for p in self.pipelines.values())

    def step(self) -> tuple[int, list[Outcome]]:
        """Analyse the newest frame of every camera that has one; (frames, outcomes)."""
        found: list[tuple[CameraPipeline, Event, Frame | None]] = []
        frames: list[tuple[CameraPipeline, Frame]] = []
        for pipeline in self.pipelines.values():
            found += [(pipeline, e, None) for e in pipeline.stream_events()]
            frame = pipeline.source.next_frame()
            if frame is not None:
                frames.append((pipeline, frame))
                found += [(pipeline, e, frame) for e in pipeline.tamper_events(frame)]
        to_detect = [(p, f) for p, f in frames if p.needs_detection(f)]
        for (pipeline, frame), dets in zip(
            to_detect, self.models.detector.detect([f.image for _, f in to_detect]), strict=True
        ):
            pipeline.detected(frame, dets)
        for pipeline, frame in frames:
            found += [(pipeline, e, frame) for e in pipeline.zone_events(frame)]
        pose = _batched(self.models.pose, [(p, f) for p, f in frames if p.wants_pose_model(f)])
        found += [(p, e, f) for p, f in frames for e in p.fall_events(f, pose.get(id(f)))]
        fire = _batched(self.models.fire, [(p, f) for p, f in frames if p.wants_fire_model(f)])
        found += [(p, e, f) for p, f in frames if id(f) in fire
                  for e in p.fire_events(f, fire[id(f)])]  # fmt: skip
        return len(frames), [self._outcome(p, e, f) for p, e, f in found]

    @staticmethod
    def _outcome(pipeline: CameraPipeline, event: Event, frame: Frame | None) -> Outcome:
        pipeline.counters.events += 1
        picture = render(frame.image, event) if frame is not None else None
        return Outcome(pipeline.camera.id, pipeline.camera.area, event, picture)


def _batched(
    model: Detector | None, chosen: list[tuple[CameraPipeline, Frame]]
) -> dict[int, Detections]:
    """One inference call over the chosen frames; detections keyed by id(frame)."""
    if model is None or not chosen:
        return {}
    found = model.detect([f.image for _, f in chosen])
    return {id(f): dets for (_, f), dets in zip(chosen, found, strict=True)}
