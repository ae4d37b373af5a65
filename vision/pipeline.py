"""One camera's analysis state, and the analyser that steps many cameras with batched inference."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from devices.models import Camera
from vision.analytics.fall import Fall
from vision.analytics.fire import FireConfig, FireSmoke
from vision.analytics.tamper import Tamper
from vision.analytics.zones import Analytic, LineCrossing, analytics_for
from vision.capture import Frame, FrameSource, open_source
from vision.decoding import DecoderChoice
from vision.detector import Detections, Model
from vision.events import Event
from vision.evidence import Picture, render
from vision.masks import drop_masked
from vision.motion import MotionConfig, MotionDetector
from vision.regions import MIN_PEOPLE, Rect, around, fits_model, merge, tiles, whole, zoom_side
from vision.tracking import CameraTracker, Track

PEOPLE_FRAMES = 5  # detector frames whose people's heights judge the view's scale


@dataclass(frozen=True, slots=True)
class Models:
    detector: Model
    fire: Model | None = None
    pose: Model | None = None


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
        self,
        camera: Camera,
        models: Models,
        gating: Gating,
        source: FrameSource | None = None,
        decoder: DecoderChoice = "auto",
    ) -> None:
        self.camera = camera
        self.gating = gating
        url = camera.detect_url or camera.stream_url
        self.source = source or open_source(url, camera.fps, decoder)
        settings = camera.settings
        self.settings = settings
        self.motion = MotionDetector(
            MotionConfig(
                threshold=settings.motion.threshold, contour_area=settings.motion.contour_area
            ),
            settings.motion.masks,
        )
        self.tracker = CameraTracker(models.detector.names)
        self.model_size = models.detector.imgsz
        self.person = next((k for k, v in models.detector.names.items() if v == "person"), None)
        # Heights (pixels) of the people of the latest detector frames: how small they are
        # decides whether the detector sees zoomed tiles (vision.regions.zoom_side).
        self.people: deque[list[float]] = deque(maxlen=PEOPLE_FRAMES)
        self.zoom: int | None = None  # the side of the zoomed tiles the latest frame got
        self.unsearched: list[list[float]] = []  # people of a frame to search again
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
        self.last_full = float("-inf")

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

    def regions(self, frame: Frame) -> list[Rect]:
        """The crops of this frame the detector sees (see vision.regions)."""
        height, width = frame.image.shape[:2]
        config = self.settings.regions
        if config.mode == "full":
            return whole(width, height)
        if config.mode == "tiles":
            if fits_model(width, height, self.model_size):
                return whole(width, height)
            return tiles(width, height, self.model_size, config.tile_overlap)
        seen = [*self.people, *self.unsearched]  # the latest frames' people, and those of a
        self.unsearched = []  # frame searched again at once (`rescaled`)
        self.zoom = self._zoom(seen, width, height)
        if self.zoom is not None:  # small people: tiles that enlarge them, and the whole
            # frame too where a tenth of them are too tall for a tile's overlap to hold whole
            found = tiles(width, height, self.zoom, config.tile_overlap)
            heights = [h for frame_heights in seen for h in frame_heights]
            large = float(np.percentile(heights, 90)) > self.zoom * config.tile_overlap
            return whole(width, height) + found if large else found
        if fits_model(width, height, self.model_size):
            return whole(width, height)
        ahead = self.tracker.config.predict_max_s
        tracked = [_pixels(t.predicted(frame.ts, ahead), width, height) for t in self.tracks]
        boxes = self.motion.boxes + tracked
        if not boxes or frame.ts - self.last_full >= config.full_frame_s:
            self.last_full = frame.ts  # now and then the whole frame, to find what stands still
            return whole(width, height)
        found = around(boxes, width, height, self.model_size)
        # Past a handful of crops the frame costs more than it gains (a view busy all over
        # with small people was zoomed, above).
        return found if len(found) <= config.max_regions else whole(width, height)

    def _zoom(self, people: list[list[float]], width: int, height: int) -> int | None:
        """The side of the tiles that show this view's people large enough to the model, or
        None: a view judged on its people's heights over the latest detector frames, where
        at least MIN_PEOPLE a frame were seen."""
        if not people or sum(map(len, people)) < MIN_PEOPLE * len(people):
            return None
        heights = [h for frame_heights in people for h in frame_heights]
        return zoom_side(heights, width, height, self.model_size)

    def rescaled(self, frame: Frame, dets: Detections) -> bool:
        """Whether this frame's people show the view to need zoomed tiles it was not searched
        with (a camera's first frames, or a scene that changed): it is searched again."""
        if self.settings.regions.mode != "motion" or self.zoom is not None:
            return False
        height, width = frame.image.shape[:2]
        heights = _heights(dets, self.person)
        if self._zoom([*self.people, heights], width, height) is None:
            return False
        self.unsearched = [heights]
        return True

    def tamper_events(self, frame: Frame) -> list[Event]:
        return self.tamper.update(frame.ts, frame.image) if self.tamper else []

    def detected(self, frame: Frame, dets: Detections) -> None:
        self.counters.detected += 1
        self.last_detect = frame.ts
        height, width = frame.image.shape[:2]
        kept = drop_masked(dets, self.settings.object_masks, height, width)
        self.tracker.update(kept, (height, width), frame.ts, frame.image)
        self.people.append(_heights(kept, self.person))

    def zone_events(self, frame: Frame) -> list[Event]:
        tracks, detected = self.tracks, frame.ts == self.last_detect
        return [e for analytic in self.zones for e in analytic.update(frame.ts, tracks, detected)]

    def wants_fire_model(self, frame: Frame) -> bool:
        if self.fire is None or not self.fire.due(frame.ts):
            return False
        if self.fire.candidate(frame.ts):
            return True  # decided over time: every analysed frame counts while it lasts
        recent_motion = frame.ts - self.last_motion <= self.fire.config.interval_s * 2
        return recent_motion or frame.ts - self.fire.last_run >= self.gating.refresh_s

    def wants_pose_model(self, frame: Frame) -> bool:
        if self.fall is None:
            return False
        if self.fall.watching():
            return True  # a body went down: looked for even where the detector lost it
        return bool(self.fall.candidates(self.tracks, frame.image.shape[:2], frame.ts))

    def fall_events(self, frame: Frame, pose: Detections | None) -> list[Event]:
        if self.fall is None:
            return []
        return self.fall.update(frame.ts, self.tracks, pose, frame.image.shape[:2])

    def fire_events(self, frame: Frame, dets: Detections) -> list[Event]:
        assert self.fire is not None
        objects = [t.box for t in self.tracks if t.visible]  # they move; the smoke must
        return self.fire.update(frame.ts, dets, frame.image.shape[:2], frame.image, objects)

    def close(self) -> None:
        self.source.close()


STAGES = ("decode", "motion", "detect", "track", "analytics", "evidence")


@dataclass
class StageClock:
    """CPU seconds spent in each stage of `Analyser.step`. Process time, not thread time: the
    models run on thread pools of their own."""

    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.process_time()
        try:
            yield
        finally:
            self.seconds[name] += time.process_time() - started


Found = tuple[CameraPipeline, Event, Frame | None]  # an event, with the frame that shows it


@dataclass
class Analyser:
    """Steps every camera once: frames that need it go through each model in one batch."""

    models: Models
    gating: Gating = field(default_factory=Gating)
    pipelines: dict[str, CameraPipeline] = field(default_factory=dict)
    clock: StageClock = field(default_factory=StageClock)
    decoder: DecoderChoice = "auto"  # where streams decode: NVDEC when a CUDA device opens

    def add(self, camera: Camera, source: FrameSource | None = None) -> CameraPipeline:
        pipeline = CameraPipeline(camera, self.models, self.gating, source, self.decoder)
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
        stage = self.clock.stage
        with stage("decode"):  # a replayed file decodes here; a live stream in its own thread
            found, frames = self._read()
        with stage("motion"):
            found += [(p, e, f) for p, f in frames for e in p.tamper_events(f)]
            chosen = [(p, f) for p, f in frames if p.needs_detection(f)]
        with stage("detect"):
            detections = self._detect(chosen)
        with stage("track"):
            for (pipeline, frame), dets in zip(chosen, detections, strict=True):
                pipeline.detected(frame, dets)
        with stage("analytics"):
            found += self._analyse(frames)
        with stage("evidence"):
            return len(frames), [self._outcome(p, e, f) for p, e, f in found]

    def _read(self) -> tuple[list[Found], list[tuple[CameraPipeline, Frame]]]:
        """Stream changes, and the newest frame of every camera that has one."""
        found: list[Found] = []
        frames: list[tuple[CameraPipeline, Frame]] = []
        for pipeline in self.pipelines.values():
            found += [(pipeline, e, None) for e in pipeline.stream_events()]
            frame = pipeline.source.next_frame()
            if frame is not None:
                frames.append((pipeline, frame))
        return found, frames

    def _detect(self, chosen: list[tuple[CameraPipeline, Frame]]) -> list[Detections]:
        """The detector over every crop of every chosen frame, in one batch, and again over
        the frames whose people showed them to need zoomed tiles; each frame's detections in
        its own pixels."""
        found = self._detect_once(chosen)
        pairs = enumerate(zip(chosen, found, strict=True))
        again = [n for n, ((p, f), dets) in pairs if p.rescaled(f, dets)]
        if again:
            redone = self._detect_once([chosen[n] for n in again])
            for n, dets in zip(again, redone, strict=True):
                found[n] = dets
        return found

    def _detect_once(self, chosen: list[tuple[CameraPipeline, Frame]]) -> list[Detections]:
        crops = [(f, rect) for p, f in chosen for rect in p.regions(f)]
        found = self.models.detector.detect([_crop(f.image, rect) for f, rect in crops])
        per_frame: dict[int, list[tuple[Rect, Detections]]] = {id(f): [] for _, f in chosen}
        for (frame, rect), dets in zip(crops, found, strict=True):
            per_frame[id(frame)].append((rect, dets))
        return [merge(per_frame[id(f)], *f.image.shape[1::-1]) for _, f in chosen]

    def _analyse(self, frames: list[tuple[CameraPipeline, Frame]]) -> list[Found]:
        """Zone analytics on the tracks, then falls and fire with their models, batched."""
        found: list[Found] = [(p, e, f) for p, f in frames for e in p.zone_events(f)]
        pose = _batched(self.models.pose, [(p, f) for p, f in frames if p.wants_pose_model(f)])
        found += [(p, e, f) for p, f in frames for e in p.fall_events(f, pose.get(id(f)))]
        fire = _batched(self.models.fire, [(p, f) for p, f in frames if p.wants_fire_model(f)])
        found += [
            (p, e, f) for p, f in frames if id(f) in fire for e in p.fire_events(f, fire[id(f)])
        ]
        return found

    @staticmethod
    def _outcome(pipeline: CameraPipeline, event: Event, frame: Frame | None) -> Outcome:
        pipeline.counters.events += 1
        picture = render(frame.image, event) if frame is not None else None
        return Outcome(pipeline.camera.id, pipeline.camera.area, event, picture)


def _heights(dets: Detections, label: int | None) -> list[float]:
    people = dets.cls == label
    return [float(h) for h in dets.xyxy[people, 3] - dets.xyxy[people, 1]]


def _crop(image: np.ndarray, rect: Rect) -> np.ndarray:
    x1, y1, x2, y2 = rect
    if (x1, y1) == (0, 0) and (y2, x2) == image.shape[:2]:
        return image
    return np.ascontiguousarray(image[y1:y2, x1:x2])


def _pixels(box: tuple[float, float, float, float], width: int, height: int) -> Rect:
    return (
        round(box[0] * width),
        round(box[1] * height),
        round(box[2] * width),
        round(box[3] * height),
    )


def _batched(
    model: Model | None, chosen: list[tuple[CameraPipeline, Frame]]
) -> dict[int, Detections]:
    """One inference call over the chosen frames; detections keyed by id(frame)."""
    if model is None or not chosen:
        return {}
    found = model.detect([f.image for _, f in chosen])
    return {id(f): dets for (_, f), dets in zip(chosen, found, strict=True)}
