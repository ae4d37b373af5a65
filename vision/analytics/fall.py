"""Falls: a person whose box lies wide and whose pose keypoints put the torso horizontal,
held for a moment so that someone bending down to tie a shoe does not count."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vision.detector import Detections
from vision.events import Event
from vision.tracking import Track

SHOULDERS, HIPS = [5, 6], [11, 12]
MIN_KEYPOINT_SCORE = 0.4


@dataclass(frozen=True, slots=True)
class FallConfig:
    candidate_aspect: float = 0.8  # boxes at least this wide (w/h) are checked with the pose model
    fallen_aspect: float = 1.0  # without a torso in the keypoints, a box this wide is a fall
    hold_s: float = 1.0  # how long a fall must last
    match_iou: float = 0.3  # a pose box and a track box are the same person from this overlap


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


@dataclass
class Fall:
    """One camera's fall judgement over person tracks and pose results."""

    config: FallConfig = field(default_factory=FallConfig)
    fallen_since: dict[int, float] = field(default_factory=dict)
    reported: set[int] = field(default_factory=set)

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
        alive = {t.id for t in tracks}
        seen = {t.id for t in tracks if t.last_seen == ts}
        for tid in list(self.fallen_since):
            if tid not in lying and (tid in seen or tid not in alive):
                del self.fallen_since[tid]
        self.reported &= alive
        events = []
        for tid in lying:
            since = self.fallen_since.setdefault(tid, ts)
            if tid in self.reported or ts - since < self.config.hold_s:
                continue
            self.reported.add(tid)
            track = candidates[tid]
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
            overlaps = _iou(box, pose.xyxy)
            if overlaps.size == 0 or overlaps.max() < self.config.match_iou:
                continue
            best = int(overlaps.argmax())
            if is_lying(pose.keypoints[best], pixel_aspect(track.box, shape), self.config):
                lying.add(tid)
        return lying


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    if len(boxes) == 0:
        return np.zeros(0, np.float32)
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return np.asarray(inter / np.maximum(area + areas - inter, 1e-9), np.float32)
