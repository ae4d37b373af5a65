"""Falls: a person whose box lies wide and whose pose keypoints put the torso horizontal,
held for a moment so that someone bending down to tie a shoe does not count."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vision.detector import Detections
from vision.events import Event
from vision.tracking import Track, iou

SHOULDERS, HIPS = [5, 6], [11, 12]
MIN_KEYPOINT_SCORE = 0.4


@dataclass(frozen=True, slots=True)
class FallConfig:
    candidate_aspect: float = 0.8  # boxes at least this wide (w/h) are checked with the pose model
    fallen_aspect: float = 1.0  # without a torso in the keypoints, a box this wide is a fall
    hold_s: float = 1.0  # how long a fall must last
    match_iou: float = 0.3  # a pose box and a track box are the same person from this overlap
    forget_s: float = 3.0  # a place where nobody has been seen lying this long is clear again


def pixel_aspect(box: tuple[float, float, float, float], shape: tuple[int, int]) -> float:
    height, width = shape
    w, h = (box[2] - box[0]) * width, (box[3] - box[1]) * height
    return w / h if h > 0 else 0.0


def is_lying(keypoints: np.ndarray, aspect: float, config: FallConfig) -> bool:
    """Torso more horizontal than vertical; without a visible torso, a wide box decides."""
    seen = keypoints[:, 2] >= MIN_KEYPOINT_SCORE
    if aspect < config.candidate_aspect:
        return False
    if not (seen[SHOULDERS].any() and seen[HIPS].any()):
        return aspect >= config.fallen_aspect * 1.3
    shoulder = keypoints[SHOULDERS][seen[SHOULDERS], :2].mean(axis=0)
    hip = keypoints[HIPS][seen[HIPS], :2].mean(axis=0)
    dx, dy = abs(float(hip[0] - shoulder[0])), float(hip[1] - shoulder[1])
    return dy < dx or aspect >= config.fallen_aspect * 1.5


@dataclass(slots=True)
class _Episode:
    """One person down at one place, kept by where it is rather than by track: the tracker
    may lose a person whose box turns from tall to wide and give the lying body a new id."""

    box: tuple[float, float, float, float]
    since: float
    last_lying: float
    up_since: float | None = None  # seen there not lying since
    reported: bool = False


@dataclass
class Fall:
    """One camera's fall judgement over person tracks and pose results."""

    config: FallConfig = field(default_factory=FallConfig)
    episodes: list[_Episode] = field(default_factory=list)

    def candidates(self, tracks: list[Track], shape: tuple[int, int], ts: float) -> list[Track]:
        """Person tracks seen now whose box is wide enough to need the pose model."""
        return [
            t
            for t in tracks
            if t.label == "person"
            and t.last_seen == ts
            and pixel_aspect(t.box, shape) >= self.config.candidate_aspect
        ]

    def update(
        self, ts: float, tracks: list[Track], pose: Detections | None, shape: tuple[int, int]
    ) -> list[Event]:
        candidates = {t.id: t for t in self.candidates(tracks, shape, ts)}
        lying = self._lying(candidates, pose, shape) if pose is not None else set()
        standing = [t.box for t in tracks if t.last_seen == ts and t.id not in lying]
        self._end_episodes(ts, standing)
        events = []
        for tid in sorted(lying):
            track = candidates[tid]
            episode = self._episode(track.box, ts)
            if episode.reported or ts - episode.since < self.config.hold_s:
                continue
            episode.reported = True
            events.append(
                Event(
                    "fall",
                    ts,
                    confidence=track.median_score,
                    track_id=tid,
                    bbox=track.box,
                    marks=[(track.box, f"fall #{tid}")],
                )
            )
        return events

    def _episode(self, box: tuple[float, float, float, float], ts: float) -> _Episode:
        """The episode at this place, carried on, or a new one."""
        for episode in self.episodes:
            if iou(np.array(box), np.array([episode.box]))[0] >= self.config.match_iou:
                episode.box, episode.last_lying, episode.up_since = box, ts, None
                return episode
        episode = _Episode(box, ts, ts)
        self.episodes.append(episode)
        return episode

    def _end_episodes(self, ts: float, standing: list[tuple[float, float, float, float]]) -> None:
        """An episode ends when the person has been seen up there for `hold_s` (one frame of
        a rolling body read as upright is not getting up), or nobody has lain there for
        `forget_s`."""
        kept = []
        for episode in self.episodes:
            overlaps = iou(np.array(episode.box), np.array(standing)) if standing else None
            if overlaps is not None and float(overlaps.max()) >= self.config.match_iou:
                episode.up_since = episode.up_since or ts
            up = episode.up_since is not None and ts - episode.up_since >= self.config.hold_s
            if not up and ts - episode.last_lying <= self.config.forget_s:
                kept.append(episode)
        self.episodes = kept

    def _lying(
        self, candidates: dict[int, Track], pose: Detections, shape: tuple[int, int]
    ) -> set[int]:
        if pose.keypoints is None or not candidates:
            return set()
        height, width = shape
        scale = np.array([width, height, width, height], np.float32)
        lying = set()
        for tid, track in candidates.items():
            box = np.array(track.box, np.float32) * scale
            overlaps = iou(box, pose.xyxy)
            if overlaps.size == 0 or overlaps.max() < self.config.match_iou:
                continue
            best = int(overlaps.argmax())
            if is_lying(pose.keypoints[best], pixel_aspect(track.box, shape), self.config):
                lying.add(tid)
        return lying
